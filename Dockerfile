# Airflow 3.3.2 with Newsflow installed: the image every Airflow service in docker-compose.yml runs.
FROM apache/airflow:3.3.2-python3.11

USER airflow
WORKDIR /opt/newsflow
COPY --chown=airflow:root pyproject.toml constraints.txt README.md ./
COPY --chown=airflow:root requirements/ requirements/
COPY --chown=airflow:root pipeline/ pipeline/
COPY --chown=airflow:root sql/ sql/
COPY --chown=airflow:root seeds/ seeds/
COPY --chown=airflow:root dags/ dags/

# The spaCy model is pinned by hash; the project installs against the repo's lock file, keeping the
# image's own Airflow.
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/model.txt \
 && pip install --no-cache-dir -c constraints.txt .

ENV NEWSFLOW_HOME=/opt/newsflow
