"""Emulator of Cloud Logging v2's REST API (``entries.write``, ``entries.list``): log entries in memory
(bounded), the comparisons of the Logging query language that a program needs, Google's error bodies;
and ``agent``, which writes a Cloud Run container's output lines as Cloud Run's logging agent does.

The package is ``localcloud.logging``; code inside ``localcloud`` imports the standard library's
``logging`` by its absolute name, so the two never meet."""
