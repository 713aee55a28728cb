"""Measurement, kept out of the product: what ``llm/`` and ``voice/`` hold is what the app runs.

- ``python -m benchmarks.connection``: the pooled LLM client against the embedded server behind
  the latency proxy, before (new connection per request) and after (pre-warmed pool).
- ``python -m benchmarks.pipeline``: spoken questions through the whole turn, speech end -> first audio.
- The others (turn-taking, interruptions, prompt cache, answer quality, CPU, Piper threads…) each
  measure one part; the README's results table lists them all.

Every benchmark publishes its report to ``docs/measurements/<name>.md`` through
:func:`benchmarks.report.publish`.  Their extra dependencies are in
``benchmarks/requirements.txt``.
"""
