-- WebSub (W3C) push subscriptions: one row per topic (a feed that advertises a hub), with the hub it is
-- subscribed at, the callback the hub delivers to, the HMAC secret deliveries are signed with, its state and
-- lease. Written only by pipeline/db/websub.py. The secret is kept as it is (an HMAC needs it); no role but
-- the owner reads this table (newsflow_reader is granted the analyst views only).
-- depends: 0015_intake_messages

CREATE TABLE websub_subscriptions (
    id                 bigserial   PRIMARY KEY,
    topic              text        NOT NULL,
    feed_url           text        NOT NULL,
    hub                text        NOT NULL,
    callback           text        NOT NULL,
    token              text        NOT NULL UNIQUE,
    secret             text        NOT NULL,
    state              text        NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'active', 'denied', 'failed')),
    lease_seconds      integer,
    lease_expires_at   timestamptz,
    requested_at       timestamptz NOT NULL DEFAULT now(),
    verified_at        timestamptz,
    last_delivery_at   timestamptz,
    deliveries         bigint      NOT NULL DEFAULT 0,
    last_error         text,
    last_error_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);
-- Keyed by md5: a topic URL may be up to 8,192 characters, over a btree entry's limit.
CREATE UNIQUE INDEX websub_subscriptions_topic ON websub_subscriptions (md5(topic));
REVOKE ALL ON websub_subscriptions FROM PUBLIC;

COMMENT ON TABLE websub_subscriptions IS 'WebSub push subscriptions, one per topic (docs/websub.md). Holds each subscription''s HMAC secret: not granted to newsflow_reader.';
COMMENT ON COLUMN websub_subscriptions.topic IS 'The feed''s self URL (hub.topic), else the URL it was fetched from.';
COMMENT ON COLUMN websub_subscriptions.feed_url IS 'The feed as it was given to newsflow websub subscribe: entries carried inline are named under it, as a poll names them.';
COMMENT ON COLUMN websub_subscriptions.hub IS 'The hub the subscription was asked of (the first the feed advertises).';
COMMENT ON COLUMN websub_subscriptions.callback IS 'hub.callback: NEWSFLOW_WEBSUB_CALLBACK_URL and /token.';
COMMENT ON COLUMN websub_subscriptions.token IS 'The random last path segment of the callback, naming the subscription to the receiver.';
COMMENT ON COLUMN websub_subscriptions.secret IS 'hub.secret: the random HMAC key deliveries are signed with (X-Hub-Signature). Never shown or logged.';
COMMENT ON COLUMN websub_subscriptions.state IS 'pending (asked, not yet verified), active (verified by the hub), denied (the hub said no), failed (the hub refused the request).';
COMMENT ON COLUMN websub_subscriptions.lease_expires_at IS 'When the hub stops delivering unless renewed: the verification''s hub.lease_seconds after it came.';
COMMENT ON COLUMN websub_subscriptions.last_error IS 'Why the last request, verification or delivery failed (a forged signature, a hub''s refusal).';
