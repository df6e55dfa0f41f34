//! Keyset (cursor) pagination over the projection: stable under inserts, no OFFSET scans.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use dashoffice_domain::{FieldError, api::Page};
use rusqlite::{Connection, Row, types::Value};

use crate::error::{CoreError, Result};

/// A list query under construction: filters, a sort key from a whitelist, a cursor.
pub(crate) struct ListQuery {
    select: String,
    wheres: Vec<String>,
    params: Vec<Value>,
    sort_col: &'static str,
    sort_kind: SortKind,
    desc: bool,
    limit: u32,
    cursor: Option<(Value, String)>,
    id_col: &'static str,
    /// `(table AS t, index)`: the page's ids are found in the index alone (see [`Self::covered_by`]).
    covered: Option<(&'static str, &'static str)>,
}

#[derive(Clone, Copy)]
pub(crate) enum SortKind {
    Text,
    Int,
    Real,
}

impl ListQuery {
    /// `select` must alias the table as `t` and select `t.id` among its columns.
    pub(crate) fn new(
        select: &str,
        sort: Option<&str>,
        allowed: &[(&str, &'static str, SortKind)],
        default: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Self> {
        let s = sort.unwrap_or(default);
        let (desc, key) = match s.strip_prefix('-') {
            Some(k) => (true, k),
            None => (false, s),
        };
        let (_, col, kind) = allowed.iter().find(|(k, _, _)| *k == key).ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|(k, _, _)| *k).collect();
            CoreError::from(FieldError::new(
                "sort",
                "one_of",
                format!("sort by one of {} (prefix '-' for descending)", names.join(", ")),
            ))
        })?;
        let limit = limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(FieldError::new("limit", "range", "between 1 and 500").into());
        }
        let cursor = cursor.map(|c| decode_cursor(c, *kind)).transpose()?;
        Ok(Self {
            select: select.to_string(),
            wheres: Vec::new(),
            params: Vec::new(),
            sort_col: col,
            sort_kind: *kind,
            desc,
            limit,
            cursor,
            id_col: "t.id",
            covered: None,
        })
    }

    /// Finds the page's ids by walking `index` of `table` (given as `products t`) alone, then
    /// reads only those rows. For filters that no index can seek (a `LIKE '%…%'`): walking a
    /// covering index in sort order stops at the page's end, and never visits the rows that do
    /// not match; otherwise every row of the shop is read to test it (100,000 random reads for a
    /// search that matches a few products). The caller promises that every filter and the sort
    /// use only the index's columns.
    pub(crate) fn covered_by(&mut self, table: &'static str, index: &'static str) {
        self.covered = Some((table, index));
    }

    /// Uses another column than `t.id` as the unique tie-breaker.
    pub(crate) fn id_column(mut self, col: &'static str) -> Self {
        self.id_col = col;
        self
    }

    /// Limits the rows to the caller's shop and to the branches they may see, and to `branch` when
    /// one is asked for (tables with `t.shop_id` and `t.branch_id`).
    pub(crate) fn shop_and_branch(&mut self, caller: &crate::Caller, branch: Option<&str>) {
        self.filter("t.shop_id = ?", [Value::Text(caller.shop_id.clone())]);
        if let Some(b) = caller.branch_limit() {
            self.filter("t.branch_id = ?", [Value::Text(b.to_string())]);
        }
        if let Some(b) = branch.filter(|b| !b.is_empty()) {
            self.filter("t.branch_id = ?", [Value::Text(b.to_string())]);
        }
    }

    /// Adds a condition; `?` placeholders are numbered automatically.
    pub(crate) fn filter(&mut self, cond: &str, params: impl IntoIterator<Item = Value>) {
        let mut out = String::new();
        let mut n = self.params.len();
        for ch in cond.chars() {
            if ch == '?' {
                n += 1;
                out.push_str(&format!("?{n}"));
            } else {
                out.push(ch);
            }
        }
        self.wheres.push(out);
        self.params.extend(params);
    }

    /// Runs the query; `map` turns a row into an item, `key` returns the row's sort value and id.
    pub(crate) fn run<T>(
        mut self,
        conn: &Connection,
        map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
        key: impl Fn(&T) -> (Value, String),
    ) -> Result<Page<T>> {
        if let Some((v, id)) = self.cursor.take() {
            let op = if self.desc { "<" } else { ">" };
            let c = self.sort_col;
            let idc = self.id_col;
            self.filter(&format!("({c} {op} ? OR ({c} = ? AND {idc} {op} ?))"), [v.clone(), v, Value::Text(id)]);
        }
        let dir = if self.desc { "DESC" } else { "ASC" };
        let order =
            format!(" ORDER BY {c} {dir}, {i} {dir} LIMIT {}", self.limit + 1, c = self.sort_col, i = self.id_col);
        let wheres =
            if self.wheres.is_empty() { String::new() } else { format!(" WHERE {}", self.wheres.join(" AND ")) };
        let mut sql = self.select.clone();
        match self.covered {
            // The subquery's `t` is the index walk; the outer `t` reads the rows it found.
            Some((table, index)) => sql.push_str(&format!(
                " WHERE {i} IN (SELECT {i} FROM {table} INDEXED BY {index}{wheres}{order}){order}",
                i = self.id_col
            )),
            None => sql.push_str(&format!("{wheres}{order}")),
        }
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut items = stmt
            .query_map(rusqlite::params_from_iter(self.params.iter()), |r| map(r))?
            .collect::<rusqlite::Result<Vec<T>>>()?;
        let next_cursor = if items.len() > self.limit as usize {
            items.truncate(self.limit as usize);
            items.last().map(|last| encode_cursor(key(last), self.sort_kind))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

fn encode_cursor((v, id): (Value, String), _kind: SortKind) -> String {
    let j = match v {
        Value::Integer(i) => serde_json::json!([i, id]),
        Value::Real(f) => serde_json::json!([f, id]),
        Value::Text(s) => serde_json::json!([s, id]),
        _ => serde_json::json!([null, id]),
    };
    URL_SAFE_NO_PAD.encode(j.to_string())
}

fn decode_cursor(c: &str, kind: SortKind) -> Result<(Value, String)> {
    let bad = || CoreError::from(FieldError::new("cursor", "format", "not a cursor returned by this list"));
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let j: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let arr = j.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let id = arr[1].as_str().ok_or_else(bad)?.to_string();
    let v = match kind {
        SortKind::Text => Value::Text(arr[0].as_str().ok_or_else(bad)?.to_string()),
        SortKind::Int => Value::Integer(arr[0].as_i64().ok_or_else(bad)?),
        SortKind::Real => Value::Real(arr[0].as_f64().ok_or_else(bad)?),
    };
    Ok((v, id))
}

/// A LIKE pattern matching `s` literally (wildcards escaped), with `%` around it as asked; use
/// with `LIKE ? ESCAPE '\\'`.
pub(crate) fn like(s: &str, any_before: bool, any_after: bool) -> Value {
    let mut out = String::with_capacity(s.len() + 2);
    if any_before {
        out.push('%');
    }
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    if any_after {
        out.push('%');
    }
    Value::Text(out)
}
