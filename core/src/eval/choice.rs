//! Multiple-choice answer extraction, robust to the ways models phrase a choice:
//! `(A)`, `A.`, `A)`, `A:`, `Answer: A`, `The answer is (B)`, a lone letter, or the option's
//! text itself.

/// The option letter that `text` picks among `options` (`(letter, option text)`), if any.
pub fn extract_choice(text: &str, options: &[(char, String)]) -> Option<char> {
    let letters: Vec<char> = options
        .iter()
        .map(|(l, _)| l.to_ascii_uppercase())
        .collect();
    let valid = |c: char| letters.contains(&c.to_ascii_uppercase());
    let t = text.trim();
    let chars: Vec<char> = t.chars().collect();
    // "(A)" anywhere (first occurrence).
    for w in chars.windows(3) {
        if w[0] == '(' && w[2] == ')' && w[1].is_ascii_alphabetic() && valid(w[1]) {
            return Some(w[1].to_ascii_uppercase());
        }
    }
    // "answer is X" / "answer: X" / "option X".
    let lower = t.to_lowercase();
    for key in ["answer is", "answer:", "answer", "option", "choice"] {
        if let Some(pos) = lower.find(key) {
            let rest: String = t[pos + key.len()..]
                .chars()
                .skip_while(|c| !c.is_alphanumeric())
                .collect();
            let mut it = rest.chars();
            if let (Some(c), next) = (it.next(), it.next())
                && valid(c)
                && c.is_ascii_uppercase()
                && next.is_none_or(|n| !n.is_alphanumeric())
            {
                return Some(c);
            }
        }
    }
    // Leading "A." / "A)" / "A:" / "A " / lone "A".
    if let Some(&c) = chars.first()
        && valid(c)
        && c.is_ascii_alphabetic()
        && chars
            .get(1)
            .is_none_or(|n| matches!(n, '.' | ')' | ':' | ','))
        && (c.is_ascii_uppercase() || chars.len() == 1)
    {
        return Some(c.to_ascii_uppercase());
    }
    // Option text: the longest option text contained in the answer.
    let mut best: Option<(usize, char)> = None;
    for (l, opt) in options {
        let o = opt.trim().to_lowercase();
        if !o.is_empty() && contains_word(&lower, &o) && best.is_none_or(|(n, _)| o.len() > n) {
            best = Some((o.len(), l.to_ascii_uppercase()));
        }
    }
    if let Some((_, l)) = best {
        return Some(l);
    }
    // Last resort: a leading capital letter followed by a space ("B because …").
    match (chars.first(), chars.get(1)) {
        (Some(&c), Some(' ')) if c.is_ascii_uppercase() && valid(c) => Some(c),
        _ => None,
    }
}

/// `needle` occurs in `hay` on word boundaries.
fn contains_word(hay: &str, needle: &str) -> bool {
    let mut start = 0;
    while let Some(i) = hay[start..].find(needle) {
        let a = start + i;
        let b = a + needle.len();
        let before = hay[..a]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after = hay[b..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before && after {
            return true;
        }
        start = a + needle.len().max(1);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Vec<(char, String)> {
        vec![
            ('A', "yes".into()),
            ('B', "no".into()),
            ('C', "the red car".into()),
            ('D', "a car".into()),
        ]
    }

    #[test]
    fn table_of_cases() {
        let cases: &[(&str, Option<char>)] = &[
            ("(A)", Some('A')),
            ("(B) no", Some('B')),
            ("The answer is (C).", Some('C')),
            ("The answer is D", Some('D')),
            ("Answer: B", Some('B')),
            ("answer: c", None),
            ("A.", Some('A')),
            ("B) because it is", Some('B')),
            ("B because it is", Some('B')),
            ("C: the red car", Some('C')),
            ("D", Some('D')),
            ("d", Some('D')),
            ("Option B is correct", Some('B')),
            ("It is the red car.", Some('C')),
            ("I think a car.", Some('D')),
            ("No.", Some('B')),
            ("A car is shown", Some('D')),
            ("E", None),
            ("(E)", None),
            ("I cannot tell.", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(extract_choice(text, &opts()), *want, "{text:?}");
        }
    }
}
