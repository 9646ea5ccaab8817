"""The benchmark harness: what every script in ``benchmarks/`` shares.

* :mod:`harness.cli`: the shared command line (``--smoke``, ``--seed``, ``--out``, full / smoke
  defaults, range checks);
* :mod:`harness.outputs`: where results go (``<name>[_smoke].<ext>``), the git revision and the
  software environment of a run;
* :mod:`harness.tables`: number formatting and markdown tables;
* :mod:`harness.stats`: Wilson intervals, proportions with intervals, medians;
* :mod:`harness.timing`: stopwatches, peak memory, load average;
* :mod:`harness.logs`: progress messages, silenced or recorded warnings;
* :mod:`harness.plots`: headless matplotlib and figure saving;
* :mod:`harness.bayes_runner`: timed bayesrca fits and attributions, the untimed warm-up;
* :mod:`harness.baselines`: the score- and graph-based root-cause baselines of the real-data
  benchmarks (score ordering, anomaly traversal, smooth traversal) and top-k credit with ties;
* :mod:`harness.dowhy_runner`: the DoWhy baseline (fit, attribution, bootstrap, distribution
  change, intrinsic causal influence). DoWhy is a benchmark extra only
  (``pip install -e ".[bench]"``); it is imported inside the functions.

The scripts run as ``python benchmarks/<name>.py`` (so ``benchmarks/`` is on ``sys.path``) and
import ``harness.<module>``. Nothing here runs at import time.
"""
