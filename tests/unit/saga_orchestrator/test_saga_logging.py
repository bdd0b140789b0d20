from __future__ import annotations

import io
import json

from saga_orchestrator.logging import StructuredLogger, log_context


def test_each_log_line_is_one_cloud_logging_json_object_with_the_saga_context():
    stream = io.StringIO()
    log = StructuredLogger("t", stream)
    with log_context(saga_id="trip-42", trace="projects/p/traces/abc"):
        log.info("started", steps=2)
        with log_context(step="book"):
            log.warning("slow")
    log.error("outside")
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["severity"] == "INFO" and first["message"] == "started" and first["steps"] == 2
    assert first["logging.googleapis.com/labels"] == {"saga_id": "trip-42"}
    assert first["logging.googleapis.com/trace"] == "projects/p/traces/abc"
    assert second["logging.googleapis.com/labels"] == {"saga_id": "trip-42", "step": "book"}
    assert second["severity"] == "WARNING"
    assert "logging.googleapis.com/labels" not in third and third["severity"] == "ERROR"
