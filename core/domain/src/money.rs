//! Money: exact decimals with an ISO-4217 currency; line and order totals with tax, rounded once
//! per line to the currency's minor unit (half away from zero), so totals always add up.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::FieldError;

/// A validated ISO-4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Parses an ISO-4217 alphabetic code such as `MXN` (upper case only).
    pub fn parse(field: &str, code: &str) -> Result<Self, FieldError> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FieldError::new(
                field,
                "iso4217",
                format!("'{code}' is not a three-letter upper-case ISO-4217 code"),
            ));
        }
        iso_currency::Currency::from_code(code)
            .map(Self)
            .ok_or_else(|| FieldError::new(field, "iso4217", format!("'{code}' is not an ISO-4217 currency")))
    }
    /// The alphabetic code.
    pub fn code(&self) -> &'static str {
        self.0.code()
    }
    /// Digits after the decimal point of the minor unit (2 for MXN, 0 for CLP).
    pub fn minor_digits(&self) -> u32 {
        self.0.exponent().map(u32::from).unwrap_or(2)
    }
}

/// Rounds an amount to the currency's minor unit, half away from zero.
pub fn round_money(amount: Decimal, currency: Currency) -> Decimal {
    amount.round_dp_with_strategy(currency.minor_digits(), RoundingStrategy::MidpointAwayFromZero)
}

/// Parses a decimal amount written as text, rejecting exponents and more than `max_dp` decimals.
pub fn parse_decimal(field: &str, text: &str, max_dp: u32) -> Result<Decimal, FieldError> {
    if text.contains(['e', 'E']) {
        return Err(FieldError::new(field, "decimal", format!("'{text}' uses an exponent; write the plain number")));
    }
    let d: Decimal = text.trim().parse().map_err(|_| {
        FieldError::new(field, "decimal", format!("'{text}' is not a decimal number such as \"12.50\""))
    })?;
    if d.scale() > max_dp {
        return Err(FieldError::new(field, "scale", format!("at most {max_dp} decimal places")));
    }
    Ok(d.normalize())
}

/// Amounts of one order line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAmounts {
    /// quantity × unit price, rounded to the minor unit.
    pub subtotal: Decimal,
    /// subtotal × tax rate, rounded to the minor unit.
    pub tax: Decimal,
    /// subtotal + tax.
    pub total: Decimal,
}

/// `a + b`, held at the largest (or smallest) amount instead of overflowing. The API's limits keep
/// every order far below it; a document written by something that ignored them (an old version,
/// a script over `/sync`) must still project and sum without bringing the writer down.
pub fn add_money(a: Decimal, b: Decimal) -> Decimal {
    a.checked_add(b).unwrap_or(if b.is_sign_negative() { Decimal::MIN } else { Decimal::MAX })
}

/// `a × b`, held at the largest (or smallest) amount instead of overflowing (see [`add_money`]).
pub fn mul_money(a: Decimal, b: Decimal) -> Decimal {
    a.checked_mul(b).unwrap_or(if a.is_sign_negative() != b.is_sign_negative() { Decimal::MIN } else { Decimal::MAX })
}

/// Computes a line: prices are tax-exclusive; the tax is rounded per line.
pub fn compute_line(quantity: i64, unit_price: Decimal, tax_rate: Decimal, currency: Currency) -> LineAmounts {
    let subtotal = round_money(mul_money(Decimal::from(quantity), unit_price), currency);
    let tax = round_money(mul_money(subtotal, tax_rate), currency);
    LineAmounts { subtotal, tax, total: add_money(subtotal, tax) }
}

/// Order totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Sum of line subtotals.
    pub subtotal: Decimal,
    /// Sum of line taxes.
    pub tax: Decimal,
    /// subtotal + tax.
    pub total: Decimal,
}

/// Sums line amounts; exact, so `total == subtotal + tax` always holds.
pub fn compute_totals(lines: &[LineAmounts]) -> Totals {
    lines.iter().fold(Totals::default(), |t, l| Totals {
        subtotal: add_money(t.subtotal, l.subtotal),
        tax: add_money(t.tax, l.tax),
        total: add_money(t.total, l.total),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn amounts_beyond_the_decimal_range_saturate_instead_of_panicking() {
        let mxn = Currency::parse("c", "MXN").unwrap();
        let huge = Decimal::MAX;
        let l = compute_line(2, huge, d("0.16"), mxn);
        assert_eq!((l.subtotal, l.total), (Decimal::MAX, Decimal::MAX));
        let t = compute_totals(&[l, l]);
        assert_eq!(t.total, Decimal::MAX);
        assert_eq!(add_money(Decimal::MIN, d("-1")), Decimal::MIN);
        assert_eq!(mul_money(Decimal::MAX, d("-2")), Decimal::MIN);
        assert_eq!(add_money(d("1.5"), d("2.25")), d("3.75"));
    }

    #[test]
    fn currencies() {
        assert_eq!(Currency::parse("c", "MXN").unwrap().minor_digits(), 2);
        assert_eq!(Currency::parse("c", "CLP").unwrap().minor_digits(), 0);
        assert_eq!(Currency::parse("c", "KWD").unwrap().minor_digits(), 3);
        assert_eq!(Currency::parse("c", "mxn").unwrap_err().rule, "iso4217");
        assert_eq!(Currency::parse("c", "XXZ").unwrap_err().rule, "iso4217");
    }

    #[test]
    fn tax_rounds_half_away_from_zero_per_line() {
        let mxn = Currency::parse("c", "MXN").unwrap();
        // 3 × 10.05 = 30.15; 16 % = 4.824 → 4.82
        let l = compute_line(3, d("10.05"), d("0.16"), mxn);
        assert_eq!((l.subtotal, l.tax, l.total), (d("30.15"), d("4.82"), d("34.97")));
        // 0.125 rounds up to 0.13
        let l = compute_line(1, d("0.125"), d("0"), mxn);
        assert_eq!(l.subtotal, d("0.13"));
        let clp = Currency::parse("c", "CLP").unwrap();
        let l = compute_line(1, d("1990"), d("0.19"), clp);
        assert_eq!((l.tax, l.total), (d("378"), d("2368")));
    }

    #[test]
    fn parse_rejects_bad_decimals() {
        assert_eq!(parse_decimal("price", "12.5", 4).unwrap(), d("12.5"));
        assert_eq!(parse_decimal("price", "abc", 4).unwrap_err().rule, "decimal");
        assert_eq!(parse_decimal("price", "1e3", 4).unwrap_err().rule, "decimal");
        assert_eq!(parse_decimal("price", "1.123456", 4).unwrap_err().rule, "scale");
    }

    proptest! {
        #[test]
        fn totals_add_up(lines in proptest::collection::vec((1i64..1000, 0i64..10_000_000, 0u32..3000), 0..20)) {
            let mxn = Currency::parse("c", "MXN").unwrap();
            let ls: Vec<_> = lines.iter().map(|(q, p, t)| compute_line(*q, Decimal::new(*p, 4), Decimal::new(i64::from(*t), 4), mxn)).collect();
            let t = compute_totals(&ls);
            prop_assert_eq!(t.total, t.subtotal + t.tax);
            prop_assert!(t.total.scale() <= 2);
            prop_assert!(t.tax >= Decimal::ZERO);
        }
    }
}
