//! `coded_enum!`: enumerations stored as stable English codes and shown with Chinese labels.

/// Declares an enum whose values have a stable code (stored in documents and databases)
/// and a Chinese label (shown to users); parsing accepts either, and serde uses the code.
macro_rules! coded_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($(#[$vdoc:meta])* $variant:ident = $code:literal / $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable code stored in documents and databases.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// The Chinese label shown to users.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::Error;
            /// Accepts the code or the Chinese label.
            fn from_str(input: &str) -> $crate::error::Result<Self> {
                let input = input.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.code() == input || v.label() == input)
                    .ok_or_else(|| {
                        let known: Vec<String> = $name::ALL
                            .iter()
                            .map(|v| format!("{} ({})", v.code(), v.label()))
                            .collect();
                        $crate::error::Error::invalid($field, format!("{input:?} is not one of: {}", known.join(", ")))
                    })
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::error::Error;
            fn try_from(value: String) -> $crate::error::Result<Self> {
                value.parse()
            }
        }

        impl From<$name> for &'static str {
            fn from(value: $name) -> Self {
                value.code()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}
