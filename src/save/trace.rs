//! What a payload carries, measured while it is written: `explain()` and `max_bytes=`.
//!
//! A dump with a [`Trace`] keeps the path from the root to the object being saved (the same
//! steps the error notes use, pushed on the way down instead of collected on the way up) and
//! opens an **entry** around each part that users ask about: a by-value function, class or
//! module, a captured global, a closure cell, defaults, a class attribute, an instance's
//! state, a buffer. An entry's size is the number of bytes the writer emitted between its
//! opening and its closing (`bytes`, children included; `own`, children excluded), so the
//! entries' `own` sizes plus the bytes written outside every entry (the overhead) add up to
//! the payload's length.
//!
//! It also notes the globals the payload names by reference (the modules the loader will
//! import, and which object needs each), large objects that are reached again through another
//! path (one copy travels; two parts of the program share it), and objects that write far more
//! than the size they report (a view that drags its base along).
//!
//! Without a trace (every other dump) each hook is one `Option` test.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::Dumper;
use crate::errors::{format_steps, AtPath, PathSegment, SaveResult};
use crate::fxhash::FxHashMap;

/// On the open-entry stack: an entry merged into the one below it (see `open_entry`).
const MERGED: usize = usize::MAX;

/// Objects at least this large are remembered, to report a second path to them.
pub const LARGE: usize = 64 * 1024;

/// What kind of part an entry is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Function,
    Class,
    Module,
    Global,
    Cell,
    Defaults,
    ClassAttribute,
    State,
    Buffer,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Function => "function",
            Kind::Class => "class",
            Kind::Module => "module",
            Kind::Global => "global",
            Kind::Cell => "closure cell",
            Kind::Defaults => "defaults",
            Kind::ClassAttribute => "class attribute",
            Kind::State => "instance state",
            Kind::Buffer => "buffer",
        }
    }
}

/// One measured part of the payload.
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    /// The type (or qualified name, for functions and classes) of what the part holds.
    pub detail: String,
    /// Bytes written while inside it, its children included.
    pub bytes: usize,
    /// Bytes written inside it and outside its children.
    pub own: usize,
    /// The enclosing entry (index into the entries), if any.
    pub parent: Option<usize>,
    /// For functions: the module is registered for pickling by value.
    pub by_value_module: Option<String>,
    start: usize,
    children: usize,
}

/// The state of a traced dump.
#[derive(Default)]
pub struct Trace {
    /// The steps from the root to the object being saved, outermost first.
    path: Vec<PathSegment>,
    /// Open entries, innermost last (indices into `entries`).
    open: Vec<usize>,
    pub entries: Vec<Entry>,
    /// (module, qualified name, path of the object that needs it).
    pub imports: Vec<(String, String, String)>,
    /// Large objects written so far: address -> (path, bytes).
    large: FxHashMap<usize, (String, usize)>,
    pub warnings: Vec<String>,
}

impl<'py> Dumper<'py> {
    /// `max_bytes=`: refuse payloads above `limit`, naming what fills them (which takes a
    /// trace), and keep the buffer from growing much past the limit meanwhile.
    pub fn set_max_bytes(&mut self, limit: Option<usize>) {
        self.max_bytes = limit;
        if let Some(limit) = limit {
            self.trace = Some(Box::default());
            self.out
                .set_growth_limit(limit.saturating_add(crate::writer::FRAME_SIZE_TARGET));
        }
    }

    /// Bytes emitted so far (handed on and still in the buffer).
    pub(crate) fn position(&self) -> usize {
        self.flushed + self.out.len()
    }

    /// `save(obj)` as the step `segment` of the object being saved: on failure the step joins
    /// the error's path; while tracing, it is on the path meanwhile.
    #[inline(always)]
    pub(crate) fn save_at(
        &mut self,
        obj: &Bound<'py, PyAny>,
        segment: impl Fn() -> PathSegment,
    ) -> SaveResult {
        if self.trace.is_none() {
            return self.save(obj).at(segment);
        }
        self.step_in(segment());
        let result = self.save(obj);
        self.step_out();
        result.at(segment)
    }

    /// `save(obj)` reached through `steps` (outermost first) from the object being saved,
    /// and measured as an entry of `kind` when one is given.
    pub(crate) fn save_through(
        &mut self,
        obj: &Bound<'py, PyAny>,
        kind: Option<Kind>,
        steps: &[&dyn Fn() -> PathSegment],
    ) -> SaveResult {
        let result = if self.trace.is_none() {
            self.save(obj)
        } else {
            for step in steps {
                self.step_in(step());
            }
            let result = match kind {
                Some(kind) => self.in_entry(kind, || (type_name(obj), None), |this| this.save(obj)),
                None => self.save(obj),
            };
            for _ in steps {
                self.step_out();
            }
            result
        };
        steps.iter().rev().fold(result, AtPath::at)
    }

    /// Run `body` as an entry of `kind` at the current path.
    pub(crate) fn in_entry<T>(
        &mut self,
        kind: Kind,
        describe: impl FnOnce() -> (String, Option<String>),
        body: impl FnOnce(&mut Self) -> SaveResult<T>,
    ) -> SaveResult<T> {
        if self.trace.is_none() {
            return body(self);
        }
        let (detail, by_value_module) = describe();
        self.open_entry(kind, detail, by_value_module);
        let result = body(self);
        if result.is_ok() {
            self.close_entry();
        }
        result
    }

    fn step_in(&mut self, segment: PathSegment) {
        if let Some(trace) = self.trace.as_mut() {
            trace.path.push(segment);
        }
    }

    fn step_out(&mut self) {
        if let Some(trace) = self.trace.as_mut() {
            trace.path.pop();
        }
    }

    /// The path of the object being written (for entries, and `max_bytes`'s error).
    pub(crate) fn path_text(&self) -> String {
        match &self.trace {
            Some(trace) => {
                let steps: Vec<&PathSegment> = trace.path.iter().collect();
                format_steps(self.py, &steps, self.proto)
            }
            None => String::new(),
        }
    }

    fn open_entry(&mut self, kind: Kind, detail: String, by_value_module: Option<String>) {
        let path = self.path_text();
        let start = self.position();
        let Some(trace) = self.trace.as_mut() else {
            return;
        };
        // A part that is also a by-value function or class (a global holding a function):
        // one entry, named by both kinds' detail, rather than two of the same size.
        if let Some(&top) = trace.open.iter().rev().find(|&&i| i != MERGED) {
            let entry = &mut trace.entries[top];
            if entry.start == start
                && entry.path == path
                && entry.children == 0
                && matches!(kind, Kind::Function | Kind::Class | Kind::Module)
            {
                entry.detail = format!("{} {detail}", kind.name());
                entry.by_value_module = by_value_module;
                trace.open.push(MERGED);
                return;
            }
        }
        let parent = trace.open.iter().rev().copied().find(|&i| i != MERGED);
        trace.entries.push(Entry {
            path,
            kind,
            detail,
            bytes: 0,
            own: 0,
            parent,
            by_value_module,
            start,
            children: 0,
        });
        trace.open.push(trace.entries.len() - 1);
    }

    fn close_entry(&mut self) {
        let end = self.position();
        let Some(trace) = self.trace.as_mut() else {
            return;
        };
        let Some(idx) = trace.open.pop() else {
            return;
        };
        if idx == MERGED {
            return;
        }
        let entry = &mut trace.entries[idx];
        entry.bytes = end.saturating_sub(entry.start);
        entry.own = entry.bytes.saturating_sub(entry.children);
        let (bytes, parent) = (entry.bytes, entry.parent);
        if let Some(parent) = parent {
            trace.entries[parent].children += bytes;
        }
        if entry_is_large_global(&trace.entries[idx]) {
            let global = &trace.entries[idx];
            let function = global.parent.map(|p| &trace.entries[p]);
            if let Some(module) = function.and_then(|f| f.by_value_module.clone()) {
                let warning = format!(
                    "{} ({}) travels with every function of {module}, which is registered \
                     for pickling by value: {} bytes",
                    global.path, global.detail, global.bytes
                );
                trace.warnings.push(warning);
            }
        }
    }

    /// While tracing: a global written by reference, which the loader imports.
    pub(crate) fn trace_import(&mut self, module: &Bound<'py, PyAny>, name: &Bound<'py, PyAny>) {
        if self.trace.is_none() {
            return;
        }
        let path = self.path_text();
        if let Some(trace) = self.trace.as_mut() {
            trace
                .imports
                .push((module.to_string(), name.to_string(), path));
        }
    }

    /// While tracing: remember a large object just written (from `start`), and check an
    /// object that reports its size (`nbytes`) against what it wrote.
    pub(crate) fn trace_written(&mut self, obj: &Bound<'py, PyAny>, start: usize) {
        let written = self.position().saturating_sub(start);
        if written < LARGE || self.trace.is_none() {
            return;
        }
        let path = self.path_text();
        let dragged = reported_size(obj).filter(|&n| written > 2 * n + LARGE);
        let Some(trace) = self.trace.as_mut() else {
            return;
        };
        if let Some(reported) = dragged {
            trace.warnings.push(format!(
                "{path} ({}) reports {reported} bytes but wrote {written}: it drags a larger \
                 object it views (its base) along",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ));
        }
        trace
            .large
            .entry(obj.as_ptr() as usize)
            .or_insert((path, written));
    }

    /// While tracing: a memo hit. When the object was a large one, it is reached through a
    /// second path: one copy travels, but the two places share it.
    pub(crate) fn trace_memo_hit(&mut self, obj: &Bound<'py, PyAny>) {
        if self.trace.is_none() {
            return;
        }
        let key = obj.as_ptr() as usize;
        let Some((first, bytes)) = self.trace.as_ref().and_then(|t| t.large.get(&key).cloned())
        else {
            return;
        };
        let path = self.path_text();
        if let Some(trace) = self.trace.as_mut() {
            trace.warnings.push(format!(
                "the same object ({bytes} bytes) is reached as {first} and again as {path}: \
                 it travels once, and both places share it after loading"
            ));
        }
    }

    /// The largest contributors so far, for `max_bytes`'s error: closed entries, and open
    /// ones with their bytes up to now plus the `upcoming` payload about to be written.
    pub(crate) fn top_contributors(
        &self,
        count: usize,
        upcoming: usize,
    ) -> Vec<(String, &'static str, usize)> {
        let Some(trace) = &self.trace else {
            return Vec::new();
        };
        let now = self.position() + upcoming;
        let mut rows: Vec<(String, &'static str, usize)> = trace
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let bytes = if trace.open.contains(&i) {
                    now.saturating_sub(e.start)
                } else {
                    e.bytes
                };
                (e.path.clone(), e.kind.name(), bytes)
            })
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        rows.truncate(count);
        rows
    }

    /// The trace as Python data: `{"total", "entries": [...], "imports", "warnings"}`.
    pub(crate) fn trace_report(&self) -> PyResult<Bound<'py, PyDict>> {
        let py = self.py;
        let report = PyDict::new(py);
        report.set_item("total", self.position())?;
        let entries = PyList::empty(py);
        let imports = PyList::empty(py);
        let warnings = PyList::empty(py);
        if let Some(trace) = &self.trace {
            for e in &trace.entries {
                let row = PyDict::new(py);
                row.set_item("path", &e.path)?;
                row.set_item("kind", e.kind.name())?;
                row.set_item("detail", &e.detail)?;
                row.set_item("bytes", e.bytes)?;
                row.set_item("own", e.own)?;
                row.set_item("parent", e.parent)?;
                entries.append(row)?;
            }
            for (module, name, path) in &trace.imports {
                imports.append((module, name, path))?;
            }
            for w in &trace.warnings {
                warnings.append(w)?;
            }
        }
        report.set_item("entries", entries)?;
        report.set_item("imports", imports)?;
        report.set_item("warnings", warnings)?;
        Ok(report)
    }
}

fn entry_is_large_global(entry: &Entry) -> bool {
    entry.kind == Kind::Global && entry.bytes >= LARGE
}

/// The size an object says its data has (`nbytes`: numpy arrays, PyArrow arrays, torch
/// tensors, memoryviews), when it has a base it views.
fn reported_size(obj: &Bound<'_, PyAny>) -> Option<usize> {
    let py = obj.py();
    let base = obj.getattr_opt(pyo3::intern!(py, "base")).ok().flatten()?;
    if base.is_none() {
        return None;
    }
    obj.getattr_opt(pyo3::intern!(py, "nbytes"))
        .ok()
        .flatten()?
        .extract::<usize>()
        .ok()
}

impl<'py> Dumper<'py> {
    /// A module while tracing: by value it is an entry; by reference, an import.
    pub(super) fn save_module_traced(&mut self, module: &Bound<'py, PyAny>) -> SaveResult {
        let py = self.py;
        let name = module
            .getattr_opt(pyo3::intern!(py, "__name__"))?
            .map_or_else(String::new, |n| n.to_string());
        if crate::by_value::decision::should_pickle_by_reference(module)? {
            let path = self.path_text();
            if let Some(trace) = self.trace.as_mut() {
                trace.imports.push((name, String::new(), path));
            }
            return self.save_obj(module, true);
        }
        self.in_entry(
            Kind::Module,
            || (name, None),
            |this| this.save_obj(module, true),
        )
    }
}

/// A function's qualified name, and its module's name when that module is registered for
/// pickling by value (its globals then travel with each of its functions).
pub fn describe_function(func: &Bound<'_, pyo3::types::PyFunction>) -> (String, Option<String>) {
    let qualname = qualified_name(func.as_any());
    let module = func
        .getattr_opt(pyo3::intern!(func.py(), "__module__"))
        .ok()
        .flatten()
        .filter(|m| !m.is_none());
    let registered = module.and_then(|name| {
        let loaded = crate::modules::loaded_module(&name).ok().flatten()?;
        crate::by_value::decision::is_registered_pickle_by_value(&loaded)
            .ok()
            .filter(|r| *r)
            .map(|_| name.to_string())
    });
    (qualname, registered)
}

/// `module.qualname` of a class or function (what the report shows for it).
pub fn qualified_name(obj: &Bound<'_, PyAny>) -> String {
    let py = obj.py();
    let part = |name| {
        obj.getattr_opt(name)
            .ok()
            .flatten()
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    format!(
        "{}.{}",
        part(pyo3::intern!(py, "__module__")),
        part(pyo3::intern!(py, "__qualname__"))
    )
}

/// The type name the report shows for a value.
pub fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}
