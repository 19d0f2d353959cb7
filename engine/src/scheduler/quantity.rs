//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1e3`, …).
//!
//! Container requests and limits are plain strings in the scheduler, and the
//! Kubernetes runtime parses them only when it builds a pod. Parsing them at
//! validation time rejects a bad value when the user sends it, instead of
//! leaving every room of the version failing later. The grammar is
//! Kubernetes' own:
//!
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <signedNumber>    ::= <number> | <sign><number>
//! <sign>            ::= "+" | "-"
//! <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= "e" <signedInteger> | "E" <signedInteger>
//! ```
//!
//! The value is kept as an `f64`: validation only needs to compare a request
//! with its limit, and the runtime passes the original string on unchanged.

/// A parsed, non-negative quantity. Only its magnitude is kept.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Quantity {
    value: f64,
}

impl Quantity {
    /// The quantity in base units: cores for CPU, bytes for memory.
    pub fn value(self) -> f64 {
        self.value
    }
}

/// Why a string is not a usable request or limit. The messages are written to
/// follow a field path, as in `spec.containers[0].requests.cpu: is required`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("is required")]
    Empty,
    #[error("must be a quantity such as 100m, 0.5, 128Mi or 1Gi")]
    Invalid,
    /// Requests and limits cannot be negative.
    #[error("must not be negative")]
    Negative,
    /// The value does not fit an `f64` (for example `1e400`).
    #[error("is too large")]
    TooLarge,
}

/// Parses a Kubernetes quantity and rejects negative values.
///
/// Surrounding whitespace is an error, as it is for Kubernetes.
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let number_len = unsigned
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = unsigned.split_at(number_len);
    if !is_number(number) {
        return Err(QuantityError::Invalid);
    }
    let value = match suffix_multiplier(suffix) {
        Some(multiplier) => parse_f64(number)? * multiplier,
        None => {
            // Not an SI suffix: the only other form is a decimal exponent,
            // which `f64` parsing understands directly once validated.
            let exponent = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or(QuantityError::Invalid)?;
            if !is_signed_integer(exponent) {
                return Err(QuantityError::Invalid);
            }
            parse_f64(&format!("{number}e{exponent}"))?
        }
    };
    if !value.is_finite() {
        return Err(QuantityError::TooLarge);
    }
    // `-0` is zero, not negative, as in Kubernetes.
    if negative && value != 0.0 {
        return Err(QuantityError::Negative);
    }
    Ok(Quantity { value })
}

/// `<digits>`, `<digits>.<digits>`, `<digits>.` or `.<digits>`: at most one
/// dot and at least one digit. The caller has already kept only digits and dots.
fn is_number(number: &str) -> bool {
    let dots = number.bytes().filter(|b| *b == b'.').count();
    dots <= 1 && number.len() > dots
}

/// An optionally signed run of at least one ASCII digit.
fn is_signed_integer(text: &str) -> bool {
    let digits = text
        .strip_prefix('-')
        .or_else(|| text.strip_prefix('+'))
        .unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The multiplier of a binary or decimal SI suffix, or `None` for anything
/// else (including a decimal exponent). `E` alone is exa, not an exponent.
fn suffix_multiplier(suffix: &str) -> Option<f64> {
    let multiplier = match suffix {
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return None,
    };
    Some(multiplier)
}

/// Parses text already checked against the grammar; a failure still maps to
/// an error rather than a panic.
fn parse_f64(text: &str) -> Result<f64, QuantityError> {
    text.parse().map_err(|_| QuantityError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_quantities() {
        // (input, value in base units)
        let table: &[(&str, f64)] = &[
            ("0", 0.0),
            ("2", 2.0),
            ("0.5", 0.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("+1", 1.0),
            ("-0", 0.0),
            ("100m", 0.1),
            ("250u", 250e-6),
            ("10n", 10e-9),
            ("1k", 1e3),
            ("1.5G", 1.5e9),
            ("2T", 2e12),
            ("1P", 1e15),
            ("1E", 1e18),
            ("1Ki", 1024.0),
            ("128Mi", 128.0 * 1024.0 * 1024.0),
            ("1Gi", 1024.0 * 1024.0 * 1024.0),
            ("1Ti", 1024f64.powi(4)),
            ("1Pi", 1024f64.powi(5)),
            ("1Ei", 1024f64.powi(6)),
            ("1e3", 1e3),
            ("1E3", 1e3),
            ("1.5e+3", 1.5e3),
            ("5e-1", 0.5),
            ("5.e1", 50.0),
            (".5e2", 50.0),
        ];
        for (input, want) in table {
            let got = parse_quantity(input).map(Quantity::value);
            let Ok(got) = got else {
                panic!("{input:?}: {got:?}");
            };
            assert!(
                (got - want).abs() <= want.abs() * 1e-12,
                "{input:?}: {got} != {want}"
            );
        }
    }

    #[test]
    fn rejects_invalid_quantities() {
        let table: &[(&str, QuantityError)] = &[
            ("", QuantityError::Empty),
            ("-1", QuantityError::Negative),
            ("-100m", QuantityError::Negative),
            ("-1Gi", QuantityError::Negative),
            ("-1e3", QuantityError::Negative),
            ("1e400", QuantityError::TooLarge),
            (" 1", QuantityError::Invalid),
            ("1 ", QuantityError::Invalid),
            (".", QuantityError::Invalid),
            ("-", QuantityError::Invalid),
            ("+", QuantityError::Invalid),
            ("m", QuantityError::Invalid),
            ("Gi", QuantityError::Invalid),
            ("1.2.3", QuantityError::Invalid),
            ("1..", QuantityError::Invalid),
            ("--1", QuantityError::Invalid),
            ("1KI", QuantityError::Invalid),
            ("1K", QuantityError::Invalid),
            ("1mi", QuantityError::Invalid),
            ("1Gib", QuantityError::Invalid),
            ("1e", QuantityError::Invalid),
            ("1e+", QuantityError::Invalid),
            ("1e1.5", QuantityError::Invalid),
            ("1e3m", QuantityError::Invalid),
            ("1x", QuantityError::Invalid),
            ("0x10", QuantityError::Invalid),
            ("inf", QuantityError::Invalid),
            ("NaN", QuantityError::Invalid),
            ("１", QuantityError::Invalid),
        ];
        for (input, want) in table {
            assert_eq!(parse_quantity(input), Err(*want), "{input:?}");
        }
    }

    #[test]
    fn quantities_compare_across_suffixes() {
        // NaN for an error, so that every comparison below fails.
        let q = |s: &str| parse_quantity(s).map_or(f64::NAN, Quantity::value);
        assert!(q("100m") < q("0.2"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(q("1e3"), q("1k"));
    }

    #[test]
    fn error_messages_follow_a_field_path() {
        assert_eq!(QuantityError::Negative.to_string(), "must not be negative");
        assert_eq!(QuantityError::Empty.to_string(), "is required");
    }
}
