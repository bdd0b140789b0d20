"""Runs a workflow: YAML to AST, deploy-time checks, the interpreter, the standard library, metering.

Questions Google's documentation leaves open, and what this engine does, with the reason:

- **A raised string.** ``raise: "Something went wrong."`` is caught as the string itself: ``e`` is that
  string, not ``{message: ...}``, and an uncaught one fails the execution with that string as its error. The raise
  page says "Errors can be either a string or a map" and shows both
  (https://cloud.google.com/workflows/docs/reference/syntax/raising-errors); nothing says a string is
  wrapped, and the error-types page tells readers to ``json.decode`` errors that arrive as strings
  (https://cloud.google.com/workflows/docs/reference/syntax/error-types), which only makes sense if
  strings stay strings. So ``e.tags`` on a raised string is a ``TypeError``; test ``get_type(e)`` first.
- **``except: as: e`` inside a parallel branch**, where ``e`` is already a variable of the enclosing
  routine: refused at deploy unless ``e`` is listed in ``shared`` (``checks.py``). The parallel-steps page
  makes any write to a parent variable that is not shared a deployment error
  (https://cloud.google.com/workflows/docs/reference/syntax/parallel-steps) and names no exception for
  ``as``; binding the error is a write, and letting it through would let branches overwrite the parent's
  ``e`` concurrently. A program hit by this names the branch's error differently (``as: branch_error``)
  or declares ``e`` shared. When ``e`` is first bound inside the branch, it is the branch's own.
- **The case of HTTP response header names** (``http.*`` results and ``HttpError.headers``): kept as the
  server sent them, repeated headers joined with ", " (RFC 9110, section 5.3). The documentation shows
  no response header map; a server that speaks HTTP/1.1 chooses its own case, so read headers with both
  spellings (``map.get(r.headers, "Content-Type")`` or ``"content-type"``) when the server is not yours.
- **Whether ``main`` counts toward the call-stack depth of 20**
  (https://cloud.google.com/workflows/quotas, "call stack depth"): it does. ``main`` is depth 1, each
  subworkflow call one more, and the call that would make depth 21 raises ``RecursionError``: main plus
  19 nested subworkflows is the deepest program that runs. A limit on a call stack counts the frames on
  it, and ``main`` is one.
- **A ``retry`` map without a ``predicate``** is refused at deploy (``checks.py``): "If you don't specify
  a default retry policy, a retry predicate is required"
  (https://cloud.google.com/workflows/docs/reference/syntax/retrying).
"""
