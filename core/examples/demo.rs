//! Creates a demo store the way a joint team would fill it offline, and prints what it
//! holds: cases, findings, a level conflict between two inspectors, history and the
//! rectifications due.
//!
//! Run: `cargo run -p anjian-core --example demo [-- STORE_DIR]`

use anjian_core::sample;
use anjian_core::{
    CaseQuery, CaseType, Enterprise, FindingEdit, Identity, Level, NewFinding, RectificationOrder,
    RiskGrade, Store, TeamMember, Violation, ViolationKind,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("anjian-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let zhang = Identity {
        user_id: "zhangwei".into(),
        name: "张伟".into(),
        department: "应急管理局".into(),
        district: "310101".parse()?,
        role: anjian_core::Role::Inspector,
    };
    let li = Identity {
        user_id: "lina".into(),
        name: "李娜".into(),
        department: "消防救援支队".into(),
        district: "310104".parse()?,
        role: anjian_core::Role::Inspector,
    };
    let mut a = Store::open(dir.join("zhangwei.db"), zhang.clone())?;
    let mut b = Store::open(dir.join("lina.db"), li.clone())?;

    let mut case_ids = Vec::new();
    for (i, (name, industry)) in sample::ENTERPRISES.iter().enumerate() {
        let enterprise = Enterprise {
            name: (*name).into(),
            industry: *industry,
            risk_grade: if i % 2 == 0 {
                RiskGrade::Significant
            } else {
                RiskGrade::General
            },
            ..sample::enterprise(i as u32 + 1)
        };
        a.register_enterprise(&enterprise)?;
        let mut new = sample::new_case(&enterprise);
        new.opened_at -= chrono::Duration::days(i as i64);
        if i == 0 {
            new.case_type = CaseType::Joint;
            new.team.push(TeamMember::from(&li));
        }
        let case = a.open_case(&new)?;
        let (text, category, basis, place, major) = sample::FINDINGS[i % sample::FINDINGS.len()];
        let finding = a.add_finding(
            case,
            &NewFinding {
                description: text.into(),
                level: Some(if major { Level::Major } else { Level::General }),
                category: category.into(),
                legal_basis: basis.into(),
                place: place.into(),
                violation: None,
            },
        )?;
        a.order_rectification(
            case,
            finding,
            &RectificationOrder {
                measures: "立即整改并提交整改报告".into(),
                deadline: new.opened_at.date_naive() + chrono::Duration::days(7),
                responsible: "企业安全总监".into(),
            },
        )?;
        case_ids.push((case, finding));
    }

    // The joint case: Li receives it, both inspectors work offline, then they exchange.
    let (joint, finding) = case_ids[0];
    b.merge_case(&a.export_case(joint)?)?;
    b.add_finding(
        joint,
        &NewFinding {
            violation: Some(Violation {
                kind: ViolationKind::IllegalOperation,
                post: "电焊工".into(),
                person: "赵某".into(),
            }),
            ..sample::finding("电焊工在罐区动火作业未佩戴防护面罩")
        },
    )?;
    a.edit_finding(
        joint,
        finding,
        &FindingEdit {
            level: Some(Level::General),
            ..FindingEdit::default()
        },
    )?;
    b.edit_finding(
        joint,
        finding,
        &FindingEdit {
            level: Some(Level::Major),
            ..FindingEdit::default()
        },
    )?;
    a.merge_case(&b.export_case(joint)?)?;
    b.merge_case(&a.export_case(joint)?)?;

    println!("演示数据: {}", dir.display());
    println!();
    println!("检查记录 (张伟的设备):");
    for case in a.cases(&CaseQuery::default())? {
        println!(
            "  {}  {}  {}  隐患 {} 条 (重大 {})  {}",
            case.opened_at.format("%Y-%m-%d"),
            case.case_type.label(),
            case.enterprise_name,
            case.findings,
            case.major_findings,
            if case.has_conflicts {
                "⚠ 有冲突待处理"
            } else {
                ""
            }
        );
    }
    println!();
    let joint_case = a.case(joint)?;
    println!("联合执法 {}:", joint_case.enterprise.name);
    for f in &joint_case.findings {
        let violation = f
            .violation
            .as_ref()
            .map(|v| format!(" [{} · {}]", v.kind.label(), v.post))
            .unwrap_or_default();
        println!(
            "  - {} ({}){violation}  记录人 {}",
            f.description,
            f.level.label(),
            f.recorded_by
        );
    }
    for conflict in a.conflicts(joint)? {
        println!("  冲突 {}:", conflict.path.join("/"));
        for value in &conflict.values {
            let shown = value.value.to_string();
            let shown = shown
                .parse::<Level>()
                .map(|l| l.label().to_owned())
                .unwrap_or(shown);
            println!("    {} 写入 {shown}", value.written_by);
        }
    }
    println!();
    println!("变更历史:");
    for entry in a.history(joint)? {
        let time = chrono::DateTime::from_timestamp(entry.device_time, 0)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        println!(
            "  {time}  {}  {}  设备 {}",
            entry.author,
            entry.action,
            &entry.device[..8]
        );
    }
    println!();
    let today = chrono::Local::now().date_naive();
    println!("截至 {today} 到期或逾期的整改:");
    for f in a.rectifications_due(today)? {
        println!(
            "  {}  {}  {} ({})",
            f.deadline.map(|d| d.to_string()).unwrap_or_default(),
            f.enterprise_name,
            f.title,
            f.level.label()
        );
    }
    Ok(())
}
