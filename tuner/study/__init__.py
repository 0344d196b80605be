"""The study: ``tuner optimize``'s options, preparing a study, running it, and its sampler.

- :mod:`tuner.study.options`: every option of ``tuner optimize``, defined once.
- :mod:`tuner.study.samplers`: the sampler and pruner ``--sampler`` and ``--pruner`` name.
- :mod:`tuner.study.snapshot`: the sampler reads the study once per trial, not once per parameter.
- :mod:`tuner.study.prepare`: a study opened or created and made ready to run, in named steps.
- :mod:`tuner.study.estimate`: what the study will cost, said before its first trial.
- :mod:`tuner.study.run`: trials run, in this process or in ``--jobs`` workers.
- :mod:`tuner.study.parallel`: the ``--jobs`` worker processes.
- :mod:`tuner.study.ray_connect`: reaching the Ray cluster ``--ray`` names, before anything is made.
- :mod:`tuner.study.cluster`: ``--ray``, this process as the driver that hands trials to Ray actors.
- :mod:`tuner.study.actors`: what ``--ray`` runs on the nodes: the trial actor, the weights' keeper.
- :mod:`tuner.study.testset`: the test set, touched once when a study ends.
"""
