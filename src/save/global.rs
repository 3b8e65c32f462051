//! Globals by reference: `save_global` (STACK_GLOBAL, GLOBAL, the `getattr` reduction for
//! nested names below protocol 4, EXT codes) and `save_type`, with `pickle`'s
//! checks and messages.

use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use super::Dumper;
use crate::errors::{pickling_error, SaveResult};
use crate::modules::{import_module, is_local, resolve, split_dotted, whichmodule, Scan};
use crate::writer::encode;
use crate::writer::opcodes::*;

impl<'py> Dumper<'py> {
    /// Classes: `type(None)`, `type(...)` and `type(NotImplemented)` are not attributes of any
    /// module, so they are written as `type(None)` etc.; everything else by reference.
    pub(super) fn save_type(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let py = self.py;
        let singleton = if obj.is(py.None().bind(py).get_type()) {
            Some(py.None().into_bound(py))
        } else if obj.is(py.Ellipsis().bind(py).get_type()) {
            Some(py.Ellipsis().into_bound(py))
        } else if obj.is(py.NotImplemented().bind(py).get_type()) {
            Some(py.NotImplemented().into_bound(py))
        } else {
            None
        };
        match singleton {
            Some(value) => {
                let args = PyTuple::new(py, [value])?;
                self.save_reduce_parts(
                    &py.get_type::<pyo3::types::PyType>().into_any(),
                    &args,
                    Some(obj),
                )
            }
            None => self.save_global(obj, None),
        }
    }

    /// `obj` by reference as `module.qualname` (or `module.name` when a reducer gave `name`).
    pub(crate) fn save_global(
        &mut self,
        obj: &Bound<'py, PyAny>,
        name: Option<&Bound<'py, PyString>>,
    ) -> SaveResult {
        let py = self.py;
        let global_name = match name {
            Some(n) => n.clone().into_any(),
            None => match obj.getattr_opt(pyo3::intern!(py, "__qualname__"))? {
                Some(q) => q,
                None => obj.getattr(pyo3::intern!(py, "__name__"))?,
            },
        };
        let global_name = global_name.cast_into::<PyString>().map_err(PyErr::from)?;
        let dotted = split_dotted(&global_name)?;
        if is_local(&dotted) {
            // CPython's wording changed in 3.13.
            let verb = if cfg!(Py_3_13) { "get" } else { "pickle" };
            return Err(PyAttributeError::new_err(format!(
                "Can't {verb} local object {}",
                global_name.repr()?
            ))
            .into());
        }
        // pickle's whichmodule: no module has it means `__main__`.
        let module_name = match whichmodule(obj, &dotted, Scan::Pickle)? {
            Some(name) => name,
            None => pyo3::intern!(py, "__main__").clone().into_any(),
        };
        let Ok(module) = import_module(&module_name) else {
            return Err(pickling_error(
                py,
                format!(
                    "Can't pickle {}: import of module {} failed",
                    obj.repr()?,
                    module_name.repr()?
                ),
            )
            .into());
        };
        let Ok((found, parent)) = resolve(&module, &dotted) else {
            return Err(pickling_error(
                py,
                format!(
                    "Can't pickle {}: attribute lookup {} on {} failed",
                    obj.repr()?,
                    global_name,
                    module_name.str()?
                ),
            )
            .into());
        };
        if !found.is(obj) {
            return Err(pickling_error(
                py,
                format!(
                    "Can't pickle {}: it's not the same object as {}.{}",
                    obj.repr()?,
                    module_name.str()?,
                    global_name
                ),
            )
            .into());
        }

        if self.trace.is_some() {
            self.trace_import(&module_name, global_name.as_any());
        }
        if self.proto >= 2 && !self.lk.extension_registry.bind(py).is_empty() {
            let key = PyTuple::new(py, [module_name.clone(), global_name.clone().into_any()])?;
            if let Some(code) = self.lk.extension_registry.bind(py).get_item(&key)? {
                return self.save_ext(obj, &code);
            }
        }

        if self.proto >= 4 {
            self.save(&module_name)?;
            self.save(global_name.as_any())?;
            self.write(&[STACK_GLOBAL])?;
        } else if !parent.is(&module) {
            self.save_nested_name(&module_name, &dotted, parent)?;
        } else {
            self.write_global_text(&module_name, global_name.as_any())?;
        }
        self.memo_put(obj)
    }

    /// skypickle's own reconstructors (builtin functions whose `__reduce__` names them): written
    /// by name directly, with the same bytes `save_global` would produce after its checks,
    /// which they pass by construction. Returns false for any other object.
    pub(crate) fn save_known_global(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult<bool> {
        let py = self.py;
        if self.proto >= 2 && !self.lk.extension_registry.bind(py).is_empty() {
            return Ok(false);
        }
        let Some((module_name, global_name)) = crate::wire::wire(py)?.as_global(obj) else {
            return Ok(false);
        };
        if self.trace.is_some() {
            self.trace_import(&module_name, global_name.as_any());
        }
        if self.proto >= 4 {
            self.save(&module_name)?;
            self.save(global_name.as_any())?;
            self.write(&[STACK_GLOBAL])?;
        } else {
            self.write_global_text(&module_name, global_name.as_any())?;
        }
        self.memo_put(obj)?;
        Ok(true)
    }

    /// A function the by-value layer found importable: `lookup_module_and_qualname` already
    /// found its module in `sys.modules` and checked that `module.qualname` is this function,
    /// which is what `save_global` would check again. Written directly when that gives the same
    /// bytes (protocol 4+, no extension codes registered, `__module__` set), else by
    /// `save_global`.
    pub(crate) fn save_function_by_reference(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let py = self.py;
        if self.proto >= 4 && self.lk.extension_registry.bind(py).is_empty() {
            let module_name = obj.getattr(pyo3::intern!(py, "__module__"))?;
            if !module_name.is_none() {
                let qualname = obj.getattr(pyo3::intern!(py, "__qualname__"))?;
                if qualname.is_instance_of::<PyString>() {
                    if self.trace.is_some() {
                        self.trace_import(&module_name, &qualname);
                    }
                    self.save(&module_name)?;
                    self.save(&qualname)?;
                    self.write(&[STACK_GLOBAL])?;
                    return self.memo_put(obj);
                }
            }
        }
        self.save_global(obj, None)
    }

    /// A nested name (`Outer.Inner`) below protocol 4, which has no dotted globals.
    #[cfg(not(Py_3_13))]
    fn save_nested_name(
        &mut self,
        _module_name: &Bound<'py, PyAny>,
        dotted: &[Bound<'py, PyString>],
        parent: Bound<'py, PyAny>,
    ) -> SaveResult {
        // 3.9–3.12: `getattr(parent, lastname)` as a reduce, the parent saved as a global.
        let py = self.py;
        // Never empty here (a path of one part has the module as parent), but the parts come
        // from a str's split(), which a str subclass may override: an error, not a panic.
        let Some(lastname) = dotted.last() else {
            return Err(pickling_error(py, "can't pickle a global with an empty name").into());
        };
        let args = PyTuple::new(py, [parent, lastname.clone().into_any()])?;
        let getattr = self.lk.getattr.bind(py).clone();
        self.save_reduce_parts(&getattr, &args, None)
    }

    /// A nested name (`Outer.Inner`) below protocol 4, which has no dotted globals.
    #[cfg(Py_3_13)]
    fn save_nested_name(
        &mut self,
        module_name: &Bound<'py, PyAny>,
        dotted: &[Bound<'py, PyString>],
        _parent: Bound<'py, PyAny>,
    ) -> SaveResult {
        // 3.13: `getattr(getattr(Outer, "Inner"), "Deeper")`, written out: the top-level name
        // as a GLOBAL, each step an unmemoised `getattr(prev, name)`.
        let py = self.py;
        let getattr = self.lk.getattr.bind(py).clone();
        // Never empty here (a path of one part has the module as parent), but the parts come
        // from a str's split(), which a str subclass may override: an error, not a panic.
        let Some((first, steps)) = dotted.split_first() else {
            return Err(pickling_error(py, "can't pickle a global with an empty name").into());
        };
        for _ in steps {
            self.save(&getattr)?;
            if self.proto < 2 {
                self.write(&[MARK])?;
            }
        }
        self.write_global_text(module_name, first.as_any())?;
        for name in steps {
            self.save(name.as_any())?;
            self.write(if self.proto < 2 {
                &[TUPLE, REDUCE]
            } else {
                &[TUPLE2, REDUCE]
            })?;
        }
        Ok(())
    }

    fn save_ext(&mut self, obj: &Bound<'py, PyAny>, code: &Bound<'py, PyAny>) -> SaveResult {
        let py = self.py;
        if !code.is_instance_of::<pyo3::types::PyInt>() {
            return Err(pickling_error(
                py,
                format!(
                    "Can't pickle {}: extension code {} isn't an integer",
                    obj.repr()?,
                    code.repr()?
                ),
            )
            .into());
        }
        let value: i64 = code.extract().unwrap_or(-1);
        if value <= 0 || value > 0x7fff_ffff {
            return Err(pickling_error(
                py,
                format!(
                    "Can't pickle {}: extension code {value} is out of range",
                    obj.repr()?
                ),
            )
            .into());
        }
        // Not memoised: the EXT opcode is already as short as a memo GET.
        self.write_small(encode::ext(value as u32))
    }

    /// GLOBAL `module\nname\n`: UTF-8 at protocol 3; ASCII with Python 2 names below it.
    pub(super) fn write_global_text(
        &mut self,
        module_name: &Bound<'py, PyAny>,
        global_name: &Bound<'py, PyAny>,
    ) -> SaveResult {
        let py = self.py;
        let mut module_name = module_name.clone();
        let mut global_name = global_name.clone();
        if self.proto < 3 {
            let key = PyTuple::new(py, [module_name.clone(), global_name.clone()])?;
            if let Some(mapped) = self.lk.reverse_name_mapping.bind(py).get_item(&key)? {
                let mapped = mapped.cast_into::<PyTuple>().map_err(PyErr::from)?;
                module_name = mapped.get_item(0)?;
                global_name = mapped.get_item(1)?;
            }
            if let Some(mapped) = self
                .lk
                .reverse_import_mapping
                .bind(py)
                .get_item(&module_name)?
            {
                module_name = mapped;
            }
        }
        let encode_part = |part: &Bound<'py, PyAny>, what: &str| -> SaveResult<Vec<u8>> {
            let part = part.cast::<PyString>().map_err(PyErr::from)?;
            match part.to_cow() {
                Ok(text) if self.proto >= 3 || text.is_ascii() => {
                    Ok(text.into_owned().into_bytes())
                }
                // Not ASCII below protocol 3, or not UTF-8 at all (lone surrogates): pickle's
                // error, formatted by Python, which can hold the identifier as it is.
                _ => {
                    let msg = pyo3::intern!(
                        py,
                        "can't pickle {} identifier '{}' using pickle protocol {}"
                    )
                    .call_method1(pyo3::intern!(py, "format"), (what, part, self.proto))?;
                    let pickling_error = self.lk.pickling_error.bind(py).clone();
                    Err(PyErr::from_type(pickling_error, msg.unbind()).into())
                }
            }
        };
        let module_bytes = encode_part(&module_name, "module")?;
        let name_bytes = encode_part(&global_name, "global")?;
        let mut line = Vec::with_capacity(module_bytes.len() + name_bytes.len() + 3);
        line.push(GLOBAL);
        line.extend_from_slice(&module_bytes);
        line.push(b'\n');
        line.extend_from_slice(&name_bytes);
        line.push(b'\n');
        self.write(&line)
    }
}
