//! Values kept in the database as text that mean one of a few things (a review's status, an
//! alert's level, a delivery's channel): an enum in code, the same text in the database.

use sqlx::Row as _;

use crate::StoreError;

/// An enum kept in the database as text: `as_str`, `ALL`, `Display`, `FromStr` (an unknown
/// text is an [`UnknownText`], never a default) and `Serialize` as its text.
macro_rules! stored_text {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Its text, as stored and as the API and the CLI take it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::stored::UnknownText;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::stored::UnknownText {
                        what: $what,
                        value: s.to_owned(),
                        expected: [$($text),+].join(", "),
                    })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

/// A stored text that is none of those its kind allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not one of: {expected}")]
pub struct UnknownText {
    /// What kind of value (`review status`, `alert level`, …).
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The texts allowed, in a line.
    pub expected: String,
}

/// A stored text as its enum; an unknown text is a decode error, never a default.
pub(crate) fn stored<T: std::str::FromStr<Err = UnknownText>>(
    r: &sqlx::any::AnyRow,
    column: usize,
) -> Result<T, StoreError> {
    Ok(r.try_get::<String, _>(column)?
        .parse()
        .map_err(|e: UnknownText| sqlx::Error::Decode(Box::new(e)))?)
}
