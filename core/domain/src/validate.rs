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

/// A tax id as an authority writes it (RFC, CUIT, NIT, RUC, RUT…): trimmed, upper-case, single
/// spaces; 3 to 32 letters (Ñ included), digits and `-` `.` `/` `&` ` `, with at least one digit.
/// Empty is no tax id.
pub fn normalize_tax_id(field: &str, s: &str) -> Result<String, FieldError> {
    let t = s.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase();
    if t.is_empty() {
        return Ok(t);
    }
    let n = t.chars().count();
    if !(3..=32).contains(&n) {
        return Err(FieldError::new(field, "length", "3 to 32 characters, such as XAXX010101000"));
    }
    if !t.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '/' | '&' | ' '))
        || !t.chars().any(|c| c.is_ascii_digit())
    {
        return Err(FieldError::new(
            field,
            "format",
            "letters, digits and - . / & only, with at least one digit, such as XAXX010101000",
        ));
    }
    Ok(t)
}

/// What the tax id is called in the country `region` (ISO 3166 alpha-2) on printed documents:
/// RFC in Mexico, CUIT in Argentina, NIT in Colombia…; `fallback` elsewhere.
pub fn tax_id_label<'a>(region: &str, fallback: &'a str) -> &'a str {
    match region {
        "MX" => "RFC",
        "AR" => "CUIT",
        "CO" | "GT" | "BO" | "SV" | "HN" | "NI" => "NIT",
        "PE" | "EC" | "PY" | "PA" => "RUC",
        "CL" | "UY" => "RUT",
        "VE" => "RIF",
        "CR" => "Cédula jurídica",
        "DO" => "RNC",
        "ES" => "NIF",
        "BR" => "CNPJ",
        _ => fallback,
    }
}

/// A postal address to print: trimmed lines, at most 3 lines of 100 characters, no control
/// characters. Empty is no address.
pub fn validate_address(field: &str, s: &str) -> Result<String, FieldError> {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.len() > 3 {
        return Err(FieldError::new(field, "max_lines", "at most 3 lines"));
    }
    if lines.iter().any(|l| l.chars().count() > 100) {
        return Err(FieldError::new(field, "max_length", "at most 100 characters per line"));
    }
    if lines.iter().any(|l| l.chars().any(char::is_control)) {
        return Err(FieldError::new(field, "format", "no control characters"));
    }
    Ok(lines.join("\n"))
}

/// A phone number to print as written (a shop's or branch's, with an extension if need be):
/// at most 40 characters of digits, spaces and `+` `(` `)` `-` `.` `/`, and letters for "ext";
/// at least 6 digits. Empty is none.
pub fn validate_contact_phone(field: &str, s: &str) -> Result<String, FieldError> {
    let t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        return Ok(t);
    }
    if t.chars().count() > 40 {
        return Err(FieldError::new(field, "max_length", "at most 40 characters"));
    }
    let digits = t.chars().filter(char::is_ascii_digit).count();
    if digits < 6 || !t.chars().all(|c| c.is_ascii_alphanumeric() || " +()-./".contains(c)) {
        return Err(FieldError::new(
            field,
            "format",
            "a phone number with at least 6 digits, such as +52 55 1234 5678 ext. 12",
        ));
    }
    Ok(t)
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
    fn fiscal_details_are_kept_as_the_authority_writes_them() {
        assert_eq!(normalize_tax_id("tax_id", "  gomá850101  ab1 ").unwrap(), "GOMÁ850101 AB1");
        assert_eq!(normalize_tax_id("tax_id", "ñ&a010101ab1").unwrap(), "Ñ&A010101AB1");
        assert_eq!(normalize_tax_id("tax_id", "20-12345678-9").unwrap(), "20-12345678-9");
        assert_eq!(normalize_tax_id("tax_id", "  ").unwrap(), "");
        let e = |r: Result<String, FieldError>| r.map_err(|e| (e.field, e.rule)).unwrap_err();
        assert_eq!(e(normalize_tax_id("tax_id", "Juan Pérez")), ("tax_id".into(), "format".into()));
        assert_eq!(e(normalize_tax_id("tax_id", "AB1<script>")), ("tax_id".into(), "format".into()));
        assert_eq!(e(normalize_tax_id("tax_id", &"1".repeat(33))), ("tax_id".into(), "length".into()));
        assert_eq!(tax_id_label("MX", "Tax ID"), "RFC");
        assert_eq!(tax_id_label("AR", "Tax ID"), "CUIT");
        assert_eq!(tax_id_label("US", "Tax ID"), "Tax ID");
        assert_eq!(
            validate_address("address", " Av. Juárez 12 \n\n Centro, CDMX \n").unwrap(),
            "Av. Juárez 12\nCentro, CDMX"
        );
        assert_eq!(e(validate_address("address", "a\nb\nc\nd")), ("address".into(), "max_lines".into()));
        assert_eq!(e(validate_address("address", &"x".repeat(101))), ("address".into(), "max_length".into()));
        assert_eq!(e(validate_address("address", "a\tb")), ("address".into(), "format".into()));
        assert_eq!(validate_contact_phone("phone", " +52 55  1234 5678 ext. 12").unwrap(), "+52 55 1234 5678 ext. 12");
        assert_eq!(e(validate_contact_phone("phone", "12345")), ("phone".into(), "format".into()));
        assert_eq!(e(validate_contact_phone("phone", "55 1234 5678; DROP")), ("phone".into(), "format".into()));
    }

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
