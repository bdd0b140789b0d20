"""A minimal emulator of BigQuery's REST API (``bigquery/v2``), served over plain HTTP as
``BIGQUERY_EMULATOR_HOST`` for the unmodified ``google-cloud-bigquery`` client: datasets and tables with
their schemas, rows streamed in with ``tabledata.insertAll`` and read back with ``tabledata.list``. No
queries, jobs, views or load jobs: what Pub/Sub's BigQuery subscriptions and the samples around them use."""
