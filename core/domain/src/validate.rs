//! Field rules shared by the API, CSV import and the UI's forms.

use rust_decimal::Decimal;

use crate::{FieldError, parse_decimal};

/// A display name: trimmed, 1 to 200 characters.
pub fn validate_name(field: &str, s: &str) -> Result<String, FieldError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(FieldError::new(field, "required", "must not be empty"));
    }
    if t.chars().count() > 200 {
        return Err(FieldError::new(field, "max_length", "at most 200 characters"));
    }
    Ok(t.to_string())
}

/// A SKU: 1 to 64 characters of letters, digits, `-`, `_`, `.` and `/`.
pub fn validate_sku(field: &str, s: &str) -> Result<String, FieldError> {
    let t = s.trim();
    if t.is_empty() || t.len() > 64 {
        return Err(FieldError::new(field, "length", "must be 1 to 64 characters"));
    }
    if !t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')) {
        return Err(FieldError::new(field, "format", "only letters, digits, '-', '_', '.' and '/'"));
    }
    Ok(t.to_string())
}

/// A branch code: 2 to 8 upper-case letters or digits; it starts every order number of the branch.
pub fn validate_branch_code(field: &str, s: &str) -> Result<String, FieldError> {
    let t = s.trim();
    if !(2..=8).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return Err(FieldError::new(field, "format", "2 to 8 upper-case letters or digits"));
    }
    Ok(t.to_string())
}

/// A tax rate as a fraction between 0 and 1 (0.16 is 16 %), at most 4 decimals.
pub fn validate_tax_rate(field: &str, s: &str) -> Result<Decimal, FieldError> {
    let d = parse_decimal(field, s, 4)?;
    if d < Decimal::ZERO || d > Decimal::ONE {
        return Err(FieldError::new(field, "range", "a fraction between 0 and 1, e.g. 0.16 for 16 %"));
    }
    Ok(d)
}

/// An e-mail address, lower-cased.
pub fn normalize_email(field: &str, s: &str) -> Result<String, FieldError> {
    let t = s.trim().to_lowercase();
    let ok = t.len() <= 254
        && t.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !t.contains(char::is_whitespace);
    if ok { Ok(t) } else { Err(FieldError::new(field, "email", format!("'{s}' is not an e-mail address"))) }
}

/// Tags: trimmed, lower-cased, de-duplicated, sorted; each 1 to 40 characters, at most 20.
pub fn normalize_tags(field: &str, tags: &[String]) -> Result<Vec<String>, FieldError> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, t) in tags.iter().enumerate() {
        let t = t.trim().to_lowercase();
        if t.is_empty() || t.chars().count() > 40 {
            return Err(FieldError::new(format!("{field}[{i}]"), "length", "each tag is 1 to 40 characters"));
        }
        out.push(t);
    }
    out.sort();
    out.dedup();
    if out.len() > 20 {
        return Err(FieldError::new(field, "max_items", "at most 20 tags"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(validate_name("name", "  Café  ").unwrap(), "Café");
        assert_eq!(validate_name("name", " ").unwrap_err().rule, "required");
        assert_eq!(validate_sku("sku", "AB-1/2").unwrap(), "AB-1/2");
        assert_eq!(validate_sku("sku", "a b").unwrap_err().rule, "format");
        assert_eq!(validate_branch_code("code", "CEN").unwrap(), "CEN");
        assert!(validate_branch_code("code", "cen").is_err());
        assert_eq!(validate_tax_rate("t", "0.16").unwrap().to_string(), "0.16");
        assert_eq!(validate_tax_rate("t", "16").unwrap_err().rule, "range");
        assert_eq!(normalize_email("e", " Ana@Shop.MX ").unwrap(), "ana@shop.mx");
        assert!(normalize_email("e", "ana@shop").is_err());
        assert_eq!(normalize_tags("tags", &["B".into(), "a".into(), "b".into()]).unwrap(), vec!["a", "b"]);
    }
}
