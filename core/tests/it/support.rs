//! Shared fixtures: identities, enterprises and stores in temporary directories.

use anjian_core::{
    CaseId, CaseType, CreditCode, Enterprise, Identity, Industry, NewCase, NewFinding, RiskGrade,
    Store,
};
use chrono::{DateTime, FixedOffset};

/// A unified social credit code with a correct check character, made from `seed`.
pub fn credit_code(seed: u32) -> CreditCode {
    let body = format!("91310101MA{seed:07}");
    let check = CreditCode::check_character(&body).expect("17 valid characters");
    format!("{body}{check}")
        .parse()
        .expect("valid by construction")
}

pub fn identity(user: &str, department: &str, district: &str) -> Identity {
    Identity {
        user_id: user.to_owned(),
        name: format!("检查员{user}"),
        department: department.to_owned(),
        district: district.parse().expect("valid district"),
    }
}

pub fn inspector(user: &str) -> Identity {
    identity(user, "应急管理", "310101")
}

pub fn enterprise(seed: u32) -> Enterprise {
    Enterprise {
        credit_code: credit_code(seed),
        name: format!("上海某某化工有限公司{seed}"),
        district: "310101".parse().expect("valid district"),
        industry: Industry::HazardousChemicals,
        risk_grade: RiskGrade::Significant,
    }
}

pub fn visit_time() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-11-20T09:30:00+08:00").expect("valid time")
}

pub fn new_case(enterprise: &Enterprise) -> NewCase {
    NewCase {
        enterprise: enterprise.credit_code.clone(),
        case_type: CaseType::Routine,
        district: None,
        visible_to: Vec::new(),
        team: Vec::new(),
        opened_at: visit_time(),
        location: None,
    }
}

pub fn finding(description: &str) -> NewFinding {
    NewFinding {
        description: description.to_owned(),
        category: "设备设施".to_owned(),
        legal_basis: "《中华人民共和国安全生产法》第三十六条".to_owned(),
        place: "罐区".to_owned(),
        ..NewFinding::default()
    }
}

/// A store in `dir` for `user`, with one enterprise registered and one case opened.
pub fn store_with_case(dir: &tempfile::TempDir, file: &str, user: &str) -> (Store, CaseId) {
    let mut store = Store::open(dir.path().join(file), inspector(user)).expect("store opens");
    let ent = enterprise(1);
    store
        .register_enterprise(&ent)
        .expect("enterprise registers");
    let case = store.open_case(&new_case(&ent)).expect("case opens");
    (store, case)
}
