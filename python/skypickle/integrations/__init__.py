"""Plugging skypickle into the engines that ship code to other processes.

* :mod:`skypickle.integrations.dask`: ``install()`` for dask and distributed;
  ``install_tokenize()`` alone for ``dask.base.tokenize`` (functions and classes by
  ``skypickle.fingerprint``).
* :mod:`skypickle.integrations.joblib`: ``joblib.Memory`` keys that see code: ``install()``
  (``joblib.hash``), ``hash()``, ``cache(memory, func)``.
* :mod:`skypickle.integrations.ray`: ``install()`` for Ray (returns the ``runtime_env``).
* :mod:`skypickle.integrations.loky`: ``install()`` for joblib/loky (``LOKY_PICKLER=skypickle``
  or ``set_loky_pickler("skypickle")`` do the same for workers that have skypickle).
* :mod:`skypickle.integrations.spark`: ``install()`` on a PySpark driver.
* :mod:`skypickle.pools`: the standard library's process pools.

The ``install()`` of dask, Ray and loky takes ``workers="skypickle"`` or ``"cloudpickle"``
(workers that only have cloudpickle, or Ray's copy of it); ``None`` decides, as each module's
documentation says. Spark's takes ``executors=`` with the same two formats, and ``"detect"``.
"""
