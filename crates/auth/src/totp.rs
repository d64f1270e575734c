//! Time-based one-time passwords (RFC 6238) as authenticator apps expect them: SHA-1, six
//! digits, 30-second steps, one step of clock drift either way. Shared by app users'
//! MFA factors and admins' second factor. A step, once accepted, is remembered by the
//! caller: no code works twice.

/// The TOTP of a base32 secret, labelled for an authenticator app when `label` is given
/// (issuer, account).
pub(crate) fn totp_for(secret: &str, label: Option<(&str, &str)>) -> Option<totp_rs::TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .ok()?;
    let (issuer, account) = label.map_or((None, String::new()), |(issuer, account)| {
        (Some(issuer.replace(':', " ")), account.replace(':', " "))
    });
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 0, 30, bytes, issuer, account).ok()
}

/// A new secret: 160 random bits, base32, as RFC 4226 recommends.
pub(crate) fn new_secret() -> String {
    totp_rs::Secret::generate_secret().to_encoded().to_string()
}

/// The time step `code` is valid for at `now` (this one, or one either side for clock
/// drift), if it is newer than `after`. Each candidate is compared in constant time.
pub(crate) fn accepted_step(totp: &totp_rs::TOTP, code: &str, after: i64, now: i64) -> Option<i64> {
    let current = now / 30;
    let code = code.trim();
    [current - 1, current, current + 1]
        .into_iter()
        .find(|&step| step > after && totp.check(code, u64::try_from(step * 30).unwrap_or(0)))
}

/// The `otpauth://` URI as a QR code, an SVG document (what GoTrue answers; clients
/// prefix `data:image/svg+xml;utf-8,` and use it as an image's source unescaped). Colours
/// are named: a `#` would end the data URL there, as a fragment, and the image with it.
pub(crate) fn qr_svg(uri: &str) -> Option<String> {
    use qrcode::render::svg::Color;
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<Color<'_>>()
            .dark_color(Color("black"))
            .light_color(Color("white"))
            .module_dimensions(3, 3)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_accepted_once_per_step_and_within_one_step_of_drift() {
        let secret = new_secret();
        let totp = totp_for(&secret, None).expect("a generated secret decodes");
        let now = 1_900_000_000;
        let step = now / 30;
        let code = totp.generate(u64::try_from(now).expect("positive"));
        assert_eq!(accepted_step(&totp, &code, 0, now), Some(step));
        // Already used: refused.
        assert_eq!(accepted_step(&totp, &code, step, now), None);
        // One step late is drift; two steps late is too old.
        assert_eq!(accepted_step(&totp, &code, 0, now + 30), Some(step));
        assert_eq!(accepted_step(&totp, &code, 0, now + 60), None);
        assert_eq!(accepted_step(&totp, "000000x", 0, now), None);
    }

    #[test]
    fn the_qr_code_is_an_svg_of_the_uri() {
        let totp = totp_for(&new_secret(), Some(("galley.test", "ada@example.com")))
            .expect("a generated secret decodes");
        let svg = qr_svg(&totp.get_url()).expect("a URI fits a QR code");
        assert!(
            svg.starts_with("<?xml") || svg.starts_with("<svg"),
            "{svg:.40}"
        );
        assert!(svg.contains("</svg>"));
        assert!(
            totp.get_url()
                .starts_with("otpauth://totp/galley.test:ada%40example.com?secret=")
        );
    }
}
