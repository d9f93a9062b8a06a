//! Email addresses masked for the log (`a***@example.com`): recipients and SMTP
//! answers, which often quote the recipient, are logged only this way.

/// Masks every email address in `text` (`a***@example.com`): SMTP answers often quote
/// the recipient, and logs must not.
pub fn mask_addresses(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || "<>()[],;:\"'".contains(c))
        .map(|word| {
            let end =
                word.trim_end_matches(|c: char| c.is_whitespace() || "<>()[],;:\"'".contains(c));
            match end.split_once('@') {
                Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
                    let first: String = local.chars().take(1).collect();
                    format!("{first}***@{domain}{}", &word[end.len()..])
                }
                _ => word.to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::mask_addresses;

    #[test]
    fn addresses_are_masked_wherever_they_are_quoted() {
        assert_eq!(
            mask_addresses("550 5.1.1 <bob@example.com>: Recipient address rejected"),
            "550 5.1.1 <b***@example.com>: Recipient address rejected"
        );
        assert_eq!(mask_addresses("ada@example.com"), "a***@example.com");
        assert_eq!(mask_addresses("451 try again"), "451 try again");
    }
}
