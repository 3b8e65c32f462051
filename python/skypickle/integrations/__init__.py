"""Plugging skypickle into the engines that ship code to other processes.

* :mod:`skypickle.integrations.dask`: ``install()`` for dask and distributed.
* :mod:`skypickle.integrations.ray`: ``install()`` for Ray (returns the ``runtime_env``).
* joblib/loky need no module: ``LOKY_PICKLER=skypickle`` or ``set_loky_pickler("skypickle")``.
* :mod:`skypickle.pools`: the standard library's process pools.
"""
