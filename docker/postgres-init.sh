#!/bin/sh
# Creates the news database and its owner on first start (docker-entrypoint-initdb.d).
set -eu
psql -v ON_ERROR_STOP=1 -v news_password="$NEWS_DB_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f /docker-entrypoint-initdb.d/postgres-init.sql.in
