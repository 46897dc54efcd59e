"""Benchmarks behind ``python -m sandbox bench``: optimizer step time, peak extra memory, achieved
bandwidth (:mod:`.steps`, :mod:`.memory`, :mod:`.bandwidth`, assembled by :mod:`.report`), and the
replica, stacked-seeds and probe-overhead benchmarks of the other issues (:mod:`.replicas`,
:mod:`.stacked_seeds`, :mod:`.probes`)."""
