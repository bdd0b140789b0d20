"""The saga console: the ``saga`` command (``cli``), the web console it serves (``web``, ``saga console``;
its pages in ``pages``, a saga's timeline as bars in ``bars``) and the timeline a saga result is drawn as
(``timeline``). They read only what ``SagaOrchestrator`` reads (and the step executor's log, for every
attempt's answer), so they work on the local cloud and on a Google Cloud project alike."""
