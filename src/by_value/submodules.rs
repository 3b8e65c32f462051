//! The submodules a by-value function reaches by attribute through a package it uses
//! (`np.linalg.norm` with only `np` global, `xml.etree.ElementTree.parse` with only `xml`):
//! pickled with the function so that loading it imports them.
//!
//! A submodule counts when it is in `sys.modules` and every dotted part of its name below the
//! package is one of the code's `co_names` (cloudpickle's rule). Finding them by scanning
//! `sys.modules` costs a pass over every loaded module for each package a function uses (a
//! few microseconds with numpy loaded, more with pandas), per function and per dump. So each
//! thread keeps, per package name, the submodules' `sys.modules` keys indexed by their first
//! part; a function then costs a hash lookup per name of its `co_names`.
//!
//! **When the index is current.** It is read under a stamp of `sys.modules`
//! ([`crate::ffi::modules_stamp`]) and thrown away, whole, when the stamp differs: on
//! 3.9-3.11 the dict's PEP 509 version, on 3.12+ a count of the events of a dict watcher on
//! `sys.modules`. Both change on every insertion, replacement and deletion (and on
//! `sys.modules` itself being another dict), so a submodule imported after one dump is found
//! by the next, and one deleted or replaced is never taken from the index. The length of
//! `sys.modules`, or its length plus a weak reference to each indexed module, would be cheaper
//! to keep but would miss a module added while another is removed (the list of submodules
//! would be stale without any indexed module having changed). Where no stamp can be had (no
//! free watcher slot on 3.12+), nothing is kept and each call reads `sys.modules` afresh.
//!
//! **What it holds.** Keys (str) only, never modules: a module is looked up in `sys.modules`
//! by its key when a function reaches it, so the index keeps no module alive after it leaves
//! `sys.modules`, and what is written is whatever `sys.modules` holds at that moment.
//!
//! **Threads.** The index is per thread, like `CodeInfo`: no lock on the dump path; each
//! thread reads a package once per state of `sys.modules`.

use std::cell::RefCell;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString, PyTuple};

use crate::fxhash::FxHashMap;

/// One submodule of a package: its `sys.modules` key, and the dotted parts of that key below
/// the package after the first one (the first is the index's key).
struct Submodule {
    key: Py<PyString>,
    rest: Box<[Box<str>]>,
}

/// The submodules of one package in `sys.modules`, in `sys.modules`' order (the order they are
/// written in, as before the index existed).
struct Package {
    submodules: Vec<Submodule>,
    /// Positions in `submodules`, by the first dotted part below the package.
    by_first: FxHashMap<Box<str>, Vec<usize>>,
}

#[derive(Default)]
struct Index {
    /// The stamp of `sys.modules` that `packages` were read under.
    stamp: Option<(usize, u64)>,
    packages: FxHashMap<Box<str>, Rc<Package>>,
}

thread_local! {
    static INDEX: RefCell<Index> = RefCell::default();
}

impl Package {
    /// Reads the submodules of the package `name` off `sys.modules`.
    fn read(modules: &Bound<'_, PyDict>, name: &str) -> Self {
        let mut package = Package {
            submodules: Vec::new(),
            by_first: FxHashMap::default(),
        };
        // Over a snapshot of the keys (a list), as everywhere sys.modules is walked: nothing
        // below runs Python code now, and if it ever did (a collection importing a module),
        // the live dict would change under the walk.
        for key in modules.keys().iter() {
            let Ok(key) = key.cast_into::<PyString>() else {
                continue;
            };
            // A module name that is not UTF-8 (lone surrogates) has no dotted parts that
            // bytecode can name: not a submodule the code reaches.
            let Ok(text) = key.to_cow() else {
                continue;
            };
            let Some(below) = text
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('.'))
            else {
                continue;
            };
            let mut parts = below.split('.');
            let first = parts.next().unwrap_or_default();
            let rest: Box<[Box<str>]> = parts.map(Box::from).collect();
            // An empty part ("pkg..x", "pkg.") is never one of co_names.
            if first.is_empty() || rest.iter().any(|p| p.is_empty()) {
                continue;
            }
            package
                .by_first
                .entry(Box::from(first))
                .or_default()
                .push(package.submodules.len());
            package.submodules.push(Submodule {
                key: key.unbind(),
                rest,
            });
        }
        package
    }

    /// Appends to `found` the submodules all of whose parts are among `names` (a code's
    /// `co_names`), in `sys.modules`' order, as `sys.modules` holds them now.
    fn reached<'py>(
        &self,
        modules: &Bound<'py, PyDict>,
        names: &[&str],
        found: &mut Vec<Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let mut hits: Vec<usize> = Vec::new();
        for name in names {
            let Some(positions) = self.by_first.get(*name) else {
                continue;
            };
            for &i in positions {
                // In bounds: positions are indices of `submodules`, made together.
                let rest = &self.submodules[i].rest;
                if rest
                    .iter()
                    .all(|part| names.iter().any(|n| *n == part.as_ref()))
                {
                    hits.push(i);
                }
            }
        }
        hits.sort_unstable();
        let py = modules.py();
        for i in hits {
            let key = self.submodules[i].key.bind(py);
            if let Some(module) = modules.get_item(key)? {
                if !module.is_none() {
                    found.push(module);
                }
            }
        }
        Ok(())
    }
}

/// The indexed submodules of the package `name`, read now if this thread's index has none
/// for the current state of `sys.modules`.
fn package(modules: &Bound<'_, PyDict>, name: &str) -> Rc<Package> {
    let stamp = crate::ffi::modules_stamp(modules);
    let cached = INDEX
        .try_with(|index| {
            let mut index = index.borrow_mut();
            if stamp.is_none() || index.stamp != stamp {
                // Stale as a whole: drop every package (their keys with them).
                index.packages.clear();
                index.stamp = stamp;
            }
            index.packages.get(name).cloned()
        })
        .ok()
        .flatten();
    if let Some(package) = cached {
        return package;
    }
    // Read without the index borrowed: reading allocates, and a collection may run user code
    // that pickles a function on this thread.
    let package = Rc::new(Package::read(modules, name));
    let _ = INDEX.try_with(|index| {
        let mut index = index.borrow_mut();
        // Kept only if read under the stamp the index holds (user code run meanwhile may have
        // changed sys.modules and the index moved on).
        if stamp.is_some() && index.stamp == stamp {
            index.packages.insert(Box::from(name), package.clone());
        }
    });
    package
}

/// Submodules of the modules in `deps` that code with these `co_names` reaches by
/// attribute: for each package in `deps` in order, its submodules in `sys.modules`' order.
pub fn find_imported_submodules<'py>(
    co_names: &Bound<'py, PyTuple>,
    deps: &[Bound<'py, PyAny>],
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let Some(dep) = deps.first() else {
        return Ok(Vec::new());
    };
    let py = dep.py();
    let modules = crate::modules::sys_modules(py)?;
    let mut packages = Vec::new();
    for dep in deps {
        if !dep.is_instance_of::<PyModule>() {
            continue;
        }
        // Only a package (a module whose __package__ is set) has submodules.
        let package_attr = dep.getattr_opt(pyo3::intern!(py, "__package__"))?;
        if !package_attr.is_some_and(|p| p.is_truthy().unwrap_or(false)) {
            continue;
        }
        let name = dep.getattr(pyo3::intern!(py, "__name__"))?;
        let name = match name.cast_into::<PyString>() {
            Ok(name) => name,
            Err(other) => other.into_inner().str()?,
        };
        // A package name that is not UTF-8 prefixes no name `Package::read` keeps.
        let Ok(name) = name.to_cow() else {
            continue;
        };
        let package = package(&modules, &name);
        if !package.submodules.is_empty() {
            packages.push(package);
        }
    }
    let mut found = Vec::new();
    if packages.is_empty() {
        return Ok(found);
    }
    // The code's names as text. A name that is not UTF-8 is never a submodule's part.
    let name_objects: Vec<Bound<'py, PyString>> = co_names
        .iter()
        .filter_map(|n| n.cast_into::<PyString>().ok())
        .collect();
    let names: Vec<&str> = name_objects
        .iter()
        .filter_map(|n| n.to_str().ok())
        .collect();
    for package in packages {
        package.reached(&modules, &names, &mut found)?;
    }
    Ok(found)
}
