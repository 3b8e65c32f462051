"""Plugging skypickle into the engines that ship code to other processes.

* :mod:`skypickle.integrations.dask`: ``install()`` for dask and distributed.
* :mod:`skypickle.integrations.loky`: ``install()`` for joblib/loky (equivalent to
  ``LOKY_PICKLER=skypickle``).
* :mod:`skypickle.pools`: the standard library's process pools.
"""
