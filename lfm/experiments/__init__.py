"""The paper's experiments: the code behind the numbered notebooks that reproduce a table or a figure.

``lfm`` has five layers:

1. **core model and geometry**: :mod:`lfm.model` (the lifter), :mod:`lfm.geometry` (normalisation, Procrustes,
   cameras), :mod:`lfm.losses`, :mod:`lfm.metrics`, :mod:`lfm.graph`, :mod:`lfm.skeletons`; with the helpers
   :mod:`lfm.config`, :mod:`lfm.paths`, :mod:`lfm.results`, :mod:`lfm.env`, :mod:`lfm.plots` (the shared figure
   style).
2. **data**: :mod:`lfm.data` (the open sources, the category table, the benchmark's splits and views, batches).
3. **training and evaluation**: :mod:`lfm.train` (the one training loop), :mod:`lfm.evaluate` (the benchmark's
   protocol), :mod:`lfm.checkpoint`, :mod:`lfm.distributed`.
4. **lifting for users**: :mod:`lfm.lifting` (``lfm.lift``), :mod:`lfm.poses` (pose files), :mod:`lfm.finetune`,
   :mod:`lfm.selfsup`, :mod:`lfm.cli` (the ``lfm`` command), :mod:`lfm.pipeline` (``lfm reproduce``).
5. **the paper's experiments** (this package): what one notebook or one paper table needs and nothing else uses:

   * :mod:`lfm.experiments.ablations`: the one-lever runs of ``04_ablations`` and the studies of ``11``-``13``
     (present vs absent, rig transfer, imbalance); ``python -m lfm.experiments.ablations`` runs them in parallel;
   * :mod:`lfm.experiments.baselines`: the 3D-supervised peers of Fig. 3 and combined vs isolated training
     (``07_baselines``), trained through :func:`lfm.train.run_epochs`;
   * :mod:`lfm.experiments.h3wb`: H3WB end to end (``08_h3wb``);
   * :mod:`lfm.experiments.teaching`: the pictures of the geometry lecture (``10_geometry_lecture``);
   * :mod:`lfm.experiments.report`: the README's and docs' generated tables
     (``python -m lfm.experiments.report --write``).

Where a new piece goes: a model, loss, metric or geometry routine that a user's lift or a training run needs goes
in layer 1; a new data source in :mod:`lfm.data`; a change to how every model is trained or scored in
:mod:`lfm.train` or :mod:`lfm.evaluate`; something a user calls on their own keypoints in layer 4. Code that
serves one experiment (its runs, tables and figures) goes here, next to the others, and its notebook stays a thin
caller. Imports go one way: an experiment may import the other layers, and no module outside
:mod:`lfm.experiments` imports an experiment (``tests/test_project.py`` checks it).
"""
