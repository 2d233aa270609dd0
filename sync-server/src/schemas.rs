//! Named OpenAPI schemas of the values the API's types hold as text: the core's coded
//! enumerations (each one of its stable codes), district codes, SHA-256s and bodies of
//! bytes. At the bottom of the crate: the types of every layer name them.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, Type};

/// Declares named schemas. A field names one as `#[schema(value_type = schemas::Level)]`;
/// the description then holds it once, in `components`, with the field's own description
/// beside the reference.
macro_rules! named_schema {
    ($($(#[$doc:meta])* $name:ident = $schema:expr;)+) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    Schema::Object($schema).into()
                }
            }

            impl utoipa::ToSchema for $name {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($name))
                }
            }
        )+
    };
}

named_schema! {
    /// Schema of a case type code.
    CaseType = codes(anjian_core::CaseType::ALL.iter().map(|v| v.code()));
    /// Schema of an industry code.
    Industry = codes(anjian_core::Industry::ALL.iter().map(|v| v.code()));
    /// Schema of the code of a step of a hazard's follow-up.
    HazardAction = codes(anjian_core::HazardAction::ALL.iter().map(|v| v.code()));
    /// Schema of a re-inspection result code.
    ReinspectionResult = codes(anjian_core::ReinspectionResult::ALL.iter().map(|v| v.code()));
    /// Schema of an on-site measure code.
    OnsiteMeasure = codes(anjian_core::OnsiteMeasure::ALL.iter().map(|v| v.code()));
    /// Schema of a hazard level code.
    Level = codes(anjian_core::Level::ALL.iter().map(|v| v.code()));
    /// Schema of a rectification state code.
    RectificationState = codes(anjian_core::RectificationState::ALL.iter().map(|v| v.code()));
    /// Schema of a review action code.
    ReviewAction = codes(anjian_core::ReviewAction::ALL.iter().map(|v| v.code()));
    /// Schema of a review state code.
    ReviewState = codes(anjian_core::ReviewState::ALL.iter().map(|v| v.code()));
    /// Schema of a risk grade code.
    RiskGrade = codes(anjian_core::RiskGrade::ALL.iter().map(|v| v.code()));
    /// Schema of a role code.
    Role = codes(anjian_core::Role::ALL.iter().map(|v| v.code()));
    /// Schema of the code of a rule of the rule book.
    Rule = codes(anjian_core::rules::Rule::ALL.iter().map(|v| v.code()));
    /// Schema of a three-violation kind code.
    ViolationKind = codes(anjian_core::ViolationKind::ALL.iter().map(|v| v.code()));
    /// Schema of a district code (六位行政区划代码).
    DistrictCode = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A district code (六位行政区划代码)"))
        .pattern(Some("^[0-9]{6}$"))
        .examples(["310101"])
        .build();
    /// Schema of a SHA-256 in hex, as blobs are named.
    Sha256 = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A SHA-256 in hex"))
        .pattern(Some("^[0-9a-f]{64}$"))
        .build();
    /// Schema of a body of bytes (a photo, or a part of one).
    Binary = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .build();
}

/// Schema of a string that is one of `values`.
pub fn codes<'a>(values: impl IntoIterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}
