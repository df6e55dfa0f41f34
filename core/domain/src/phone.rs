//! Phone numbers normalised to E.164 with libphonenumber's metadata (the `phonenumber` crate).

use crate::FieldError;

/// Parses `input` (national numbers read in `default_region`, an ISO-3166 alpha-2 code) and returns
/// the E.164 form, e.g. `+5215512345678`.
pub fn normalize_phone(field: &str, input: &str, default_region: &str) -> Result<String, FieldError> {
    let region = default_region.parse::<phonenumber::country::Id>().ok();
    let trimmed = input.trim();
    // WhatsApp ids are E.164 digits without the plus sign.
    let candidate = if !trimmed.starts_with('+') && trimmed.len() > 10 && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{trimmed}")
    } else {
        trimmed.to_string()
    };
    let n = phonenumber::parse(region, &candidate)
        .map_err(|_| FieldError::new(field, "phone", format!("'{input}' is not a phone number")))?;
    if !phonenumber::is_valid(&n) {
        return Err(FieldError::new(field, "phone", format!("'{input}' is not a valid phone number")));
    }
    Ok(n.format().mode(phonenumber::Mode::E164).to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize_phone("phone", "55 1234 5678", "MX").unwrap(), "+525512345678");
        assert_eq!(normalize_phone("phone", "+57 300 123 4567", "MX").unwrap(), "+573001234567");
        assert_eq!(normalize_phone("phone", "573001234567", "MX").unwrap(), "+573001234567");
        assert_eq!(normalize_phone("phone", "(011) 4123-4567", "AR").unwrap(), "+541141234567");
        assert_eq!(normalize_phone("phone", "hola", "MX").unwrap_err().rule, "phone");
        assert_eq!(normalize_phone("phone", "123", "MX").unwrap_err().rule, "phone");
    }
}
