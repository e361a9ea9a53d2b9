//! The kubelet's `$(VAR)` expansion of env values, `command` and `args`, as test support for
//! the pod runner (`tests`) and the webhook's tests: `$$` is `$`, `$(NAME)` is replaced only
//! when NAME is defined, anything else stays literal.

/// The kubelet's `$(VAR)` expansion (`third_party/forked/golang/expansion.Expand` with
/// `MappingFuncFor`): `$$` is one literal `$`; `$(NAME)` is the value of `NAME` when `vars`
/// defines it, else stays `$(NAME)`; an unterminated `$(` and a `$` before anything else
/// (or at the end) stay as they are.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'$' => {
                out.push(b'$');
                i += 2;
            }
            b'(' => match bytes[i + 2..].iter().position(|&b| b == b')') {
                Some(len) => {
                    // `(` and `)` are ASCII: the slice is on character boundaries.
                    let name = &input[i + 2..i + 2 + len];
                    match vars(name) {
                        Some(v) => out.extend_from_slice(v.as_bytes()),
                        None => out.extend_from_slice(format!("$({name})").as_bytes()),
                    }
                    i += 3 + len;
                }
                None => {
                    out.extend_from_slice(b"$(");
                    i += 2;
                }
            },
            other => {
                out.extend_from_slice(&[b'$', other]);
                i += 2;
            }
        }
    }
    String::from_utf8(out).expect("bytes copied whole, split only at ASCII")
}
