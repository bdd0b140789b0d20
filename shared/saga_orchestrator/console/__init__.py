"""The saga console: the ``saga`` command (``cli``) and the timeline a saga result is drawn as
(``timeline``). Both read only what ``SagaOrchestrator`` reads, so they work on the local cloud and on a
Google Cloud project alike."""
