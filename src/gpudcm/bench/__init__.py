"""`gpudcm bench`: fixed workloads, timed side by side against pydicom and the copy limits (issue #9).

Modules, one job each: ``workloads`` (build the workload files into a cache folder), ``timing`` (warm-up,
interleaved rounds, medians), ``pool`` (pydicom on all cores), ``limits`` (pinned H2D / D2D copies),
``runner`` (the contenders of one workload, checked against pydicom, then timed), ``results`` (the data
and its JSON form), ``report`` (Markdown, JSON, PNG), ``machine`` (CPU, GPU, versions, commit), ``cli``.
"""
