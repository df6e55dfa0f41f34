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

/// [`normalize_tax_id`], then the check digit of the country's tax id when the value has its
/// shape (`region`: the shop's country, ISO 3166 alpha-2): RUT in Chile, CUIT/CUIL in Argentina,
/// NIT written with its check digit in Colombia and Guatemala, RUC in Peru, RUC written with its
/// check digit in Paraguay, a person's cédula or RUC in Ecuador, RUT in Uruguay, RIF in Venezuela,
/// CPF and CNPJ in Brazil; in Mexico the RFC's layout and date. A value of another shape (a foreign customer's id) is kept as it
/// is: only an id that looks like the country's own is held to its rule, so a typo in one is
/// caught before it reaches an invoice.
pub fn normalize_tax_id_in(field: &str, s: &str, region: &str) -> Result<String, FieldError> {
    let t = normalize_tax_id(field, s)?;
    if !t.is_empty() {
        check_tax_id(field, &t, region)?;
    }
    Ok(t)
}

fn check_tax_id(field: &str, t: &str, region: &str) -> Result<(), FieldError> {
    let only = |extra: &[char]| t.chars().all(|c| c.is_ascii_digit() || extra.contains(&c));
    let compact: String = t.chars().filter(|c| !matches!(c, '.' | '-' | '/' | ' ')).collect();
    let digits: Vec<u32> = compact.chars().filter_map(|c| c.to_digit(10)).collect();
    let all_digits = digits.len() == compact.chars().count();
    let wrong = |name: &str, example: &str| {
        FieldError::new(
            field,
            "check_digit",
            format!("this {name}'s check digit does not match its number (such as {example}); check it"),
        )
    };
    match region {
        "CL" if only(&['.', '-', 'K'])
            && (8..=9).contains(&compact.len())
            && !compact[..compact.len() - 1].contains('K') =>
        {
            let (body, dv) = compact.split_at(compact.len() - 1);
            let sum: u32 = body
                .chars()
                .rev()
                .filter_map(|c| c.to_digit(10))
                .zip([2, 3, 4, 5, 6, 7].iter().cycle())
                .map(|(d, w)| d * w)
                .sum();
            let expected = match 11 - sum % 11 {
                11 => '0',
                10 => 'K',
                n => char::from_digit(n, 10).unwrap_or('0'),
            };
            if !dv.starts_with(expected) {
                return Err(wrong("RUT", "12.345.678-5"));
            }
        }
        "AR" if only(&['-', '.', ' ']) && all_digits && digits.len() == 11 => {
            let expected = match 11 - cuit_ruc_sum(&digits) % 11 {
                11 => Some(0),
                10 => None,
                n => Some(n),
            };
            if expected != Some(digits[10]) {
                return Err(wrong("CUIT", "20-12345678-6"));
            }
        }
        // A NIT is often written without its check digit; it is checked when written after a dash.
        "CO" if only(&['.', '-'])
            && t.matches('-').count() == 1
            && dash_before_last(t)
            && t.ends_with(|c: char| c.is_ascii_digit()) =>
        {
            let (body, dv) = digits.split_at(digits.len() - 1);
            if !(6..=15).contains(&body.len()) {
                return Ok(());
            }
            const W: [u32; 15] = [3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71];
            let r = body.iter().rev().zip(W).map(|(d, w)| d * w).sum::<u32>() % 11;
            let expected = if r < 2 { r } else { 11 - r };
            if dv[0] != expected {
                return Err(wrong("NIT", "800.197.268-4"));
            }
        }
        "PE" if only(&['-', ' ']) && all_digits && digits.len() == 11 => {
            let expected = match 11 - cuit_ruc_sum(&digits) % 11 {
                10 => 0,
                11 => 1,
                n => n,
            };
            if digits[10] != expected {
                return Err(wrong("RUC", "20131312955"));
            }
        }
        "BR" if only(&['.', '-', '/']) && all_digits && (digits.len() == 11 || digits.len() == 14) => {
            let cpf = digits.len() == 11;
            let ok = if cpf { cpf_ok(&digits) } else { cnpj_ok(&digits) };
            if !ok {
                return Err(if cpf { wrong("CPF", "529.982.247-25") } else { wrong("CNPJ", "11.222.333/0001-81") });
            }
        }
        // Ecuador: a cédula (10 digits) or a person's RUC (the cédula and a 3-digit
        // establishment), by the third digit 0–5. The RUCs of companies (third digit 9) and public
        // bodies (6) are not held to their modulo-11 rule: numbers issued that fail it are in use.
        "EC" if only(&['-', ' ']) && all_digits && (digits.len() == 10 || digits.len() == 13) && digits[2] <= 5 => {
            let province = digits[0] * 10 + digits[1];
            let luhn = digits[..10]
                .iter()
                .enumerate()
                .map(|(i, d)| if i % 2 == 0 { (d * 2) - if d * 2 > 9 { 9 } else { 0 } } else { *d })
                .sum::<u32>();
            let establishment_ok = digits.len() == 10 || digits[10..] != [0, 0, 0];
            if !((1..=24).contains(&province) || province == 30 || province == 50) || !establishment_ok {
                return Err(FieldError::new(
                    field,
                    "format",
                    "an Ecuadorian cédula starts with its province (01 to 24, 30 or 50) and a RUC ends in its establishment (001 or later), such as 1714307103001",
                ));
            }
            if luhn % 10 != 0 {
                return Err(if digits.len() == 10 {
                    wrong("cédula", "171430710-3")
                } else {
                    wrong("RUC", "1714307103001")
                });
            }
        }
        "UY" if only(&['-', '.', ' ']) && all_digits && digits.len() == 12 => {
            let sum: u32 = digits[..11].iter().zip([4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]).map(|(d, w)| d * w).sum();
            if (11 - sum % 11) % 11 != digits[11] {
                return Err(wrong("RUT", "21-100342-001-7"));
            }
        }
        // Venezuela: a RIF is its kind (V, E, J, P, G), eight digits and the check digit.
        "VE" if compact.len() == 10
            && compact[1..].bytes().all(|b| b.is_ascii_digit())
            && matches!(compact.as_bytes()[0], b'V' | b'E' | b'J' | b'P' | b'G') =>
        {
            let kind = match compact.as_bytes()[0] {
                b'V' => 4,
                b'E' => 8,
                b'J' => 12,
                b'P' => 16,
                _ => 20,
            };
            let sum = kind + digits[..8].iter().zip([3, 2, 7, 6, 5, 4, 3, 2]).map(|(d, w)| d * w).sum::<u32>();
            let expected = match 11 - sum % 11 {
                10 | 11 => 0,
                n => n,
            };
            if digits[8] != expected {
                return Err(wrong("RIF", "V-11470283-4"));
            }
        }
        // Guatemala: a NIT written with its check digit (a digit or K) after a dash; a CUI used as
        // NIT has no dash and is not checked.
        "GT" if only(&['-', 'K']) && t.matches('-').count() == 1 && dash_before_last(t) => {
            let (body, dv) = compact.split_at(compact.len() - 1);
            let body: Vec<u32> = body.chars().filter_map(|c| c.to_digit(10)).collect();
            if (1..=11).contains(&body.len()) && body.len() == compact.len() - 1 {
                let sum: u32 = body.iter().rev().zip(2..).map(|(d, w)| d * w).sum();
                let expected = match (11 - sum % 11) % 11 {
                    10 => 'K',
                    n => char::from_digit(n, 10).unwrap_or('0'),
                };
                if !dv.starts_with(expected) {
                    return Err(wrong("NIT", "576937-K"));
                }
            }
        }
        // Paraguay: a RUC written with its check digit after a dash (a cédula alone has none).
        "PY" if only(&['-'])
            && t.matches('-').count() == 1
            && dash_before_last(t)
            && (2..=9).contains(&digits.len()) =>
        {
            let (body, dv) = digits.split_at(digits.len() - 1);
            let sum: u32 = body.iter().rev().zip(2..).map(|(d, w)| d * w).sum();
            if (11 - sum % 11) % 11 % 10 != dv[0] {
                return Err(wrong("RUC", "80028061-0"));
            }
        }
        "MX" => {
            let c: Vec<char> = compact.chars().filter(|c| *c != '-').collect();
            let letters = c.iter().take_while(|c| c.is_alphabetic() || **c == '&').count();
            // Shaped like an RFC: three or four letters first, and about its length.
            if (3..=4).contains(&letters) && (10..=14).contains(&c.len()) && !rfc_ok(&c, letters) {
                return Err(FieldError::new(
                    field,
                    "format",
                    "an RFC is 3 letters (companies) or 4 (people), the date as YYMMDD, then 3 letters or digits, such as XAXX010101000",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether `t` ends in a dash and one character (a check digit written apart).
fn dash_before_last(t: &str) -> bool {
    t.len() >= 3 && t.as_bytes()[t.len() - 2] == b'-'
}

/// The weighted sum of the first ten digits that an Argentine CUIT's and a Peruvian RUC's check
/// digit both come from (same weights, different rules for the remainders 10 and 11).
fn cuit_ruc_sum(d: &[u32]) -> u32 {
    d.iter().zip([5, 4, 3, 2, 7, 6, 5, 4, 3, 2]).map(|(d, w)| d * w).sum()
}

fn cpf_ok(d: &[u32]) -> bool {
    if d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let digit =
        |n: usize| (d[..n].iter().enumerate().map(|(i, x)| x * (n as u32 + 1 - i as u32)).sum::<u32>() * 10 % 11) % 10;
    digit(9) == d[9] && digit(10) == d[10]
}

fn cnpj_ok(d: &[u32]) -> bool {
    if d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let digit = |n: usize| {
        let w = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
        let r = d[..n].iter().zip(&w[13 - n..]).map(|(x, w)| x * w).sum::<u32>() % 11;
        if r < 2 { 0 } else { 11 - r }
    };
    digit(12) == d[12] && digit(13) == d[13]
}

/// An RFC's layout: `letters` letters, a valid YYMMDD date, three letters or digits.
fn rfc_ok(c: &[char], letters: usize) -> bool {
    if c.len() != letters + 9 {
        return false;
    }
    let date: String = c[letters..letters + 6].iter().collect();
    if !date.chars().all(|x| x.is_ascii_digit()) {
        return false;
    }
    let (month, day) = (date[2..4].parse::<u32>().unwrap_or(0), date[4..6].parse::<u32>().unwrap_or(0));
    (1..=12).contains(&month) && (1..=31).contains(&day) && c[letters + 6..].iter().all(|x| x.is_ascii_alphanumeric())
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

    #[test]
    fn a_tax_id_shaped_like_the_countrys_own_must_have_its_check_digit() {
        let ok = |v: &str, r: &str| normalize_tax_id_in("tax_id", v, r).map_err(|e| e.rule.clone());
        // Published examples, each with its check digit, and the same with the digit changed.
        for (region, good, bad) in [
            ("CL", "12.345.678-5", "12.345.678-4"),
            ("CL", "11111111-1", "11111111-K"),
            ("AR", "33-69345023-9", "33-69345023-8"),
            ("AR", "20-12345678-6", "20-12345678-5"),
            ("CO", "800.197.268-4", "800.197.268-5"),
            ("PE", "20131312955", "20131312954"),
            ("BR", "529.982.247-25", "529.982.247-24"),
            ("BR", "11.222.333/0001-81", "11.222.333/0001-80"),
            ("MX", "GODE561231GR8", "GODE561331GR8"),
            ("EC", "171430710-3", "1714307104"),
            ("EC", "1714307103001", "1714307104001"),
            ("UY", "21-100342-001-7", "210303670014"),
            ("VE", "V-11470283-4", "V-11470283-3"),
            ("VE", "J-31264530-0", "J-31264530-1"),
            ("GT", "576937-K", "576937-9"),
            ("GT", "7108-0", "8977112-0"),
            ("PY", "80028061-0", "80028061-1"),
        ] {
            assert!(ok(good, region).is_ok(), "{good} in {region}");
            let rule = ok(bad, region).unwrap_err();
            assert!(rule == "check_digit" || rule == "format", "{bad} in {region}: {rule}");
        }
        // Lower case and spaces are normalised before the check.
        assert_eq!(
            normalize_tax_id_in("tax_id", " 12.345.678-k ", "CL").map_err(|e| e.rule),
            Err("check_digit".into())
        );
        assert_eq!(normalize_tax_id_in("tax_id", "7.654.321-6", "CL").as_deref(), Ok("7.654.321-6"));
        // The generic RFCs of the SAT, a company's RFC, and a NIT without its digit pass.
        for v in ["XAXX010101000", "XEXX010101000", "ABC680524P76"] {
            assert!(ok(v, "MX").is_ok(), "{v}");
        }
        assert!(ok("800.197.268", "CO").is_ok());
        assert!(ok("800.197.267-.", "CO").is_ok(), "only a digit after the dash is a check digit");
        // A foreign customer's id of another shape is kept; so is any id where no rule is known.
        assert!(ok("B-12345678", "CL").is_ok());
        assert!(ok("12345678", "PE").is_ok());
        assert!(ok("12.345.678-4", "UY").is_ok());
        assert!(ok("DE123456789", "MX").is_ok());
        // Ecuador: a RUC with no establishment, or a cédula of no province, is not one.
        assert_eq!(ok("1714307103000", "EC"), Err("format".into()));
        assert_eq!(ok("9914307103", "EC"), Err("format".into()));
        // Ecuador's companies' and public bodies' RUCs (third digit 9 or 6) are kept as typed; so are
        // a Guatemalan CUI and a Paraguayan cédula, written without a check digit.
        assert!(ok("1792060346-001", "EC").is_ok());
        assert!(ok("1790000000001", "EC").is_ok());
        assert!(ok("2345678900101", "GT").is_ok());
        assert!(ok("4567890", "PY").is_ok());
        // A CPF of one repeated digit passes the arithmetic and is still invalid.
        assert!(ok("111.111.111-11", "BR").is_err());
    }
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
