//! Realistic sample records, for demos, tests and benchmarks: codes that validate,
//! Chinese names and findings an inspector would recognise.

use crate::codes::{CaseType, Industry, RiskGrade};
use crate::codes::{CreditCode, Role};
use crate::model::{Enterprise, Identity, NewCase, NewFinding};
use chrono::{DateTime, FixedOffset};

/// A unified social credit code with a correct check character, made from `seed`.
pub fn credit_code(seed: u32) -> CreditCode {
    let body = format!("91310101MA{seed:07}");
    let check = CreditCode::check_character(&body).expect("17 characters of the alphabet");
    format!("{body}{check}")
        .parse()
        .expect("valid by construction")
}

/// An inspector of 应急管理 in district 310101.
pub fn inspector(user: &str) -> Identity {
    Identity {
        user_id: user.to_owned(),
        name: format!("检查员{user}"),
        department: "应急管理".to_owned(),
        district: "310101".parse().expect("valid district"),
        role: Role::Inspector,
    }
}

/// A hazardous-chemicals enterprise in district 310101.
pub fn enterprise(seed: u32) -> Enterprise {
    Enterprise {
        credit_code: credit_code(seed),
        name: format!("上海某某化工有限公司{seed}"),
        district: "310101".parse().expect("valid district"),
        industry: Industry::HazardousChemicals,
        risk_grade: RiskGrade::Significant,
    }
}

/// The time of the sample visit.
pub fn visit_time() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-11-20T09:30:00+08:00").expect("valid time")
}

/// A routine case for `enterprise`.
pub fn new_case(enterprise: &Enterprise) -> NewCase {
    NewCase {
        enterprise: enterprise.credit_code.clone(),
        case_type: CaseType::Routine,
        district: None,
        visible_to: Vec::new(),
        team: Vec::new(),
        opened_at: visit_time(),
        location: None,
        amends: None,
    }
}

/// A general finding in the tank farm.
pub fn finding(description: &str) -> NewFinding {
    NewFinding {
        description: description.to_owned(),
        category: "设备设施".to_owned(),
        legal_basis: "《中华人民共和国安全生产法》第三十六条".to_owned(),
        place: "罐区".to_owned(),
        ..NewFinding::default()
    }
}

/// Sample enterprises: (name, industry), as found in a coastal city's chemical park.
pub const ENTERPRISES: &[(&str, Industry)] = &[
    ("上海滨江化工有限公司", Industry::HazardousChemicals),
    ("上海申联危险品仓储有限公司", Industry::HazardousChemicals),
    ("上海宏达金属制品有限公司", Industry::Machinery),
    ("上海建工某项目部", Industry::Construction),
    ("上海东方燃气有限公司", Industry::CityGas),
    ("上海金山石矿有限公司", Industry::NonCoalMine),
];

/// Sample findings: (description, category, legal basis, place, major).
pub const FINDINGS: &[(&str, &str, &str, &str, bool)] = &[
    (
        "液氯储罐区可燃有毒气体检测报警装置未投入使用",
        "报警与切断",
        "安监总管三〔2017〕121号 第十二条",
        "液氯罐区",
        true,
    ),
    (
        "动火作业未办理动火安全作业票",
        "作业许可",
        "GB 30871-2022 5.2.1",
        "二号车间",
        true,
    ),
    (
        "安全出口被成品货物堵塞",
        "安全管理",
        "《中华人民共和国消防法》第二十八条",
        "成品仓库",
        false,
    ),
    (
        "配电箱未设置漏电保护器",
        "设备设施",
        "GB 30871-2022 临时用电作业要求",
        "施工现场",
        false,
    ),
    (
        "叉车司机未持特种设备作业人员证上岗",
        "人员资质",
        "《中华人民共和国安全生产法》第三十条",
        "装卸区",
        false,
    ),
    (
        "受限空间作业未进行气体分析",
        "气体分析",
        "GB 30871-2022 受限空间作业要求",
        "污水池",
        true,
    ),
];

/// A JPEG of `w` x `h` pixels with a gradient and edges, which compresses like a real
/// scene: for demos and tests that need photo evidence.
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let w = w.max(1);
    let h = h.max(1);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let stripe = if (x / 17 + y / 23) % 2 == 0 { 40 } else { 0 };
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            (128 + stripe) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("encoding to memory cannot fail");
    out
}

/// Certifies each store's key as a server does at sign-in, under one made-up server key
/// that all of them trust from then on (valid whatever a store's clock says): stores that
/// hand each other cases (case files, peer sessions) then verify each other's signed
/// changes, as phones signed in to one server do. For tests and demos; a store trusts
/// only the server keys it is given.
pub fn certify(stores: &mut [&mut crate::Store]) -> crate::Result<()> {
    use crate::certificate::{Certificate, CertificateFields};
    use crate::signing::{KeyAlgorithm, Signer, SoftwareKey};
    let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [42; 32]);
    for store in stores.iter_mut() {
        let identity = store.identity().clone();
        let certificate = Certificate::issue(
            &server,
            CertificateFields {
                user: identity.user_id,
                name: identity.name,
                role: identity.role,
                district: identity.district,
                department: identity.department,
                actor: store.device_id(),
                key: store.public_key(),
                issued_at: 0,
                // 2100-01-01.
                not_after: 4_102_444_800,
                issuer: server.public_key().id(),
            },
        )?;
        store.keep_sign_in(
            "sample server",
            &server.public_key(),
            Some(&certificate.encode()),
        )?;
    }
    Ok(())
}
