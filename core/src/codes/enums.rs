//! Coded enumerations: stored as stable English codes (`general`, `major`) and shown
//! with their Chinese labels (`label()`); both are part of the document schema
//! (docs/schema.md). What may move from one value to another is the rule book's
//! (`rules`), not theirs.

coded_enum!(
    /// The key industries of work-safety supervision.
    Industry, "industry" {
        /// 危险化学品
        HazardousChemicals = "hazardous_chemicals" / "危险化学品",
        /// 非煤矿山
        NonCoalMine = "non_coal_mine" / "非煤矿山",
        /// 煤矿
        CoalMine = "coal_mine" / "煤矿",
        /// 烟花爆竹
        Fireworks = "fireworks" / "烟花爆竹",
        /// 工贸·冶金
        Metallurgy = "metallurgy" / "冶金",
        /// 工贸·有色
        Nonferrous = "nonferrous" / "有色",
        /// 工贸·建材
        BuildingMaterials = "building_materials" / "建材",
        /// 工贸·机械
        Machinery = "machinery" / "机械",
        /// 工贸·轻工
        LightIndustry = "light_industry" / "轻工",
        /// 工贸·纺织
        Textile = "textile" / "纺织",
        /// 工贸·烟草
        Tobacco = "tobacco" / "烟草",
        /// 工贸·商贸
        Commerce = "commerce" / "商贸",
        /// 建筑施工
        Construction = "construction" / "建筑施工",
        /// 城镇燃气
        CityGas = "city_gas" / "城镇燃气",
        /// 交通运输
        Transport = "transport" / "交通运输",
        /// 消防
        FireSafety = "fire_safety" / "消防",
        /// 特种设备
        SpecialEquipment = "special_equipment" / "特种设备",
    }
);

coded_enum!(
    /// Risk grade of an enterprise (风险分级), red to blue.
    RiskGrade, "risk_grade" {
        /// 重大风险 (red)
        Major = "major" / "重大风险",
        /// 较大风险 (orange)
        Significant = "significant" / "较大风险",
        /// 一般风险 (yellow)
        General = "general" / "一般风险",
        /// 低风险 (blue)
        Low = "low" / "低风险",
    }
);

coded_enum!(
    /// The kind of inspection a case records.
    CaseType, "case_type" {
        /// 日常检查
        Routine = "routine" / "日常检查",
        /// 专项检查
        SpecialCampaign = "special_campaign" / "专项检查",
        /// 联合执法
        Joint = "joint" / "联合执法",
        /// 异地交叉执法
        CrossDistrict = "cross_district" / "异地交叉执法",
        /// 集中执法
        Concentrated = "concentrated" / "集中执法",
        /// 举报核查
        ComplaintFollowUp = "complaint_follow_up" / "举报核查",
    }
);

coded_enum!(
    /// Review state of a case.
    ReviewState, "review_state" {
        /// 草稿
        Draft = "draft" / "草稿",
        /// 已提交
        Submitted = "submitted" / "已提交",
        /// 退回
        Returned = "returned" / "退回",
        /// 已审核
        Approved = "approved" / "已审核",
    }
);

coded_enum!(
    /// What a person does in a case's review (recorded in `review.events`).
    ReviewAction, "review_action" {
        /// 提交审核: the inspectors hand the case in.
        Submit = "submit" / "提交审核",
        /// 退回: a supervisor sends it back with a comment.
        Return = "return" / "退回",
        /// 审核通过: a supervisor approves it; the case is then locked.
        Approve = "approve" / "审核通过",
        /// 重新打开: a supervisor unlocks an approved case for an amendment.
        Reopen = "reopen" / "重新打开",
        /// 批注: a comment that leaves the state as it is.
        Comment = "comment" / "批注",
    }
);

impl ReviewAction {
    /// Whether the action needs a comment saying why.
    pub fn needs_text(self) -> bool {
        matches!(
            self,
            ReviewAction::Return | ReviewAction::Reopen | ReviewAction::Comment
        )
    }
}

coded_enum!(
    /// Hazard level of a finding.
    Level, "level" {
        /// 一般隐患
        General = "general" / "一般隐患",
        /// 重大事故隐患
        Major = "major" / "重大隐患",
    }
);

coded_enum!(
    /// Where a finding's rectification stands in the closed loop (隐患排查治理闭环).
    RectificationState, "rectification_state" {
        /// No rectification ordered yet.
        None = "none" / "未下达整改",
        /// 已下达整改
        Ordered = "ordered" / "已下达整改",
        /// 整改中
        InProgress = "in_progress" / "整改中",
        /// 已复查
        Reinspected = "reinspected" / "已复查",
        /// 已销号
        Closed = "closed" / "已销号",
        /// 逾期未整改
        Overdue = "overdue" / "逾期",
    }
);

impl RectificationState {
    /// Whether the hazard still needs work (ordered and not closed).
    pub fn is_open(self) -> bool {
        !matches!(self, RectificationState::None | RectificationState::Closed)
    }

    /// Whether an open rectification is overdue: marked so, or past its deadline and not
    /// yet re-inspected (a re-inspected hazard awaits closing, not the enterprise). The one
    /// rule for the rectification board, its API, the bulletins and the apps' lists.
    pub fn is_overdue(self, past_deadline: bool) -> bool {
        self.is_open()
            && (self == RectificationState::Overdue
                || (past_deadline && self != RectificationState::Reinspected))
    }

    /// The codes of the states that are open, quoted for an SQL `IN (…)` list.
    pub fn open_codes_sql() -> String {
        RectificationState::ALL
            .iter()
            .filter(|s| s.is_open())
            .map(|s| format!("'{}'", s.code()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `is_overdue` as an SQL condition, for queries that filter and sort by it: the
    /// rectification whose state is the column `state` and whose deadline (`YYYY-MM-DD`)
    /// is the expression `deadline` is overdue on `today`. Made from `is_overdue`, so that
    /// the rule stays written once.
    pub fn overdue_sql(state: &str, deadline: &str, today: chrono::NaiveDate) -> String {
        let among = |past_deadline: bool| {
            let codes: Vec<String> = RectificationState::ALL
                .iter()
                .filter(|s| s.is_overdue(past_deadline))
                .map(|s| format!("'{}'", s.code()))
                .collect();
            if codes.is_empty() {
                "FALSE".to_owned()
            } else {
                format!("{state} IN ({})", codes.join(", "))
            }
        };
        // A day's text holds digits and dashes only: it is safe to write in place.
        format!(
            "({} OR ({} AND {deadline} < '{today}'))",
            among(false),
            among(true)
        )
    }
}

coded_enum!(
    /// The three violations (三违).
    ViolationKind, "violation_kind" {
        /// 违章指挥
        IllegalCommand = "illegal_command" / "违章指挥",
        /// 违章作业
        IllegalOperation = "illegal_operation" / "违章作业",
        /// 违反劳动纪律
        LabourDiscipline = "labour_discipline" / "违反劳动纪律",
    }
);

coded_enum!(
    /// The answer to a checklist item.
    AnswerResult, "result" {
        /// 符合
        Compliant = "compliant" / "符合",
        /// 不符合 (becomes a finding)
        NonCompliant = "non_compliant" / "不符合",
        /// 不适用
        NotApplicable = "not_applicable" / "不适用",
    }
);

coded_enum!(
    /// What a user may do: the role of an account on the server, and of the inspector
    /// signed in on a device.
    Role, "role" {
        /// 执法检查人员: records cases in the field.
        Inspector = "inspector" / "执法检查人员",
        /// 监管负责人: reviews the cases of their district and those shared with it.
        Supervisor = "supervisor" / "监管负责人",
        /// 管理员: administers the server; sees and decides in every district.
        Admin = "admin" / "管理员",
    }
);

coded_enum!(
    /// What a step of a hazard's follow-up records (`findings/<id>/events`): the measures
    /// taken on site, then the closed loop after the visit — extension, re-inspection,
    /// closing — and supervision by listing (挂牌督办).
    HazardAction, "hazard_action" {
        /// 现场处理措施: a measure taken on the spot, part of the visit's record.
        Onsite = "onsite" / "现场处理措施",
        /// 延期: the deadline moved, with a reason and who granted it.
        Extend = "extend" / "延期",
        /// 复查: a re-inspection, 合格 or 不合格.
        Reinspect = "reinspect" / "复查",
        /// 销号: the hazard closed after a 合格 re-inspection.
        Close = "close" / "销号",
        /// 挂牌督办: a major hazard listed for supervision.
        List = "list" / "挂牌督办",
        /// 治理方案: the enterprise's plan for a listed hazard.
        Plan = "plan" / "治理方案",
        /// 进展报告: a progress report on a listed hazard.
        Progress = "progress" / "进展报告",
        /// 摘牌: a listed hazard delisted after it was closed.
        Delist = "delist" / "摘牌",
    }
);

impl HazardAction {
    /// Whether the step follows up a hazard after the visit, and so stays possible on an
    /// approved case (every step but the on-site measures, which belong to the visit).
    pub fn is_follow_up(self) -> bool {
        self != HazardAction::Onsite
    }
}

coded_enum!(
    /// The result of a re-inspection (复查).
    ReinspectionResult, "reinspection_result" {
        /// 合格: the hazard is rectified; it may be closed.
        Pass = "pass" / "合格",
        /// 不合格: the hazard stays open, with a new deadline or escalated.
        Fail = "fail" / "不合格",
    }
);

coded_enum!(
    /// The measures an inspector may take on the spot (现场处理措施), by 《中华人民共和国
    /// 安全生产法》第六十五条第一款.
    OnsiteMeasure, "onsite_measure" {
        /// 责令立即排除
        EliminateNow = "eliminate_now" / "责令立即排除",
        /// 责令从危险区域撤出作业人员
        Evacuate = "evacuate" / "责令从危险区域撤出作业人员",
        /// 责令暂时停产停业或者停止使用相关设施、设备
        Suspend = "suspend" / "责令暂时停产停业或者停止使用相关设施、设备",
        /// 查封、扣押
        Seize = "seize" / "查封、扣押",
    }
);

impl OnsiteMeasure {
    /// The legal basis of the measure.
    pub fn basis(self) -> &'static str {
        match self {
            OnsiteMeasure::Seize => "《中华人民共和国安全生产法》第六十五条第一款第（四）项",
            _ => "《中华人民共和国安全生产法》第六十五条第一款第（三）项",
        }
    }
}

coded_enum!(
    /// The kinds of enforcement documents (执法文书) an inspection issues on site.
    WritKind, "writ_kind" {
        /// 现场检查记录
        InspectionRecord = "inspection_record" / "现场检查记录",
        /// 责令限期整改指令书
        RectificationOrder = "rectification_order" / "责令限期整改指令书",
        /// 现场处理措施决定书
        OnsiteDecision = "onsite_decision" / "现场处理措施决定书",
        /// 整改复查意见书
        ReinspectionOpinion = "reinspection_opinion" / "整改复查意见书",
    }
);

impl WritKind {
    /// The short name of the kind in a document number (（沪黄）应急**责改**〔2026〕0012号).
    pub fn abbreviation(self) -> &'static str {
        match self {
            WritKind::InspectionRecord => "检记",
            WritKind::RectificationOrder => "责改",
            WritKind::OnsiteDecision => "现决",
            WritKind::ReinspectionOpinion => "复查",
        }
    }

    /// Whether the document records the follow-up after the visit (and so may still be
    /// issued on an approved case).
    pub fn is_follow_up(self) -> bool {
        self == WritKind::ReinspectionOpinion
    }
}

coded_enum!(
    /// Where an enforcement document stands.
    WritState, "writ_state" {
        /// 草稿: filled from the case, still editable.
        Draft = "draft" / "草稿",
        /// 待签: numbered and frozen, awaiting signatures.
        Sealed = "sealed" / "待签",
        /// 已送达: signed by two inspectors and by the enterprise (or its refusal recorded).
        Issued = "issued" / "已签发",
        /// 作废: voided with a reason (its number stays on record).
        Voided = "voided" / "作废",
    }
);

coded_enum!(
    /// Who signs an enforcement document.
    SignerRole, "signer_role" {
        /// 执法人员 (with their 执法证号).
        Inspector = "inspector" / "执法人员",
        /// 被检查单位负责人或其代表.
        Enterprise = "enterprise" / "被检查单位",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_in_sql_agrees_with_is_overdue_for_every_state() {
        let conn = rusqlite::Connection::open_in_memory().expect("database");
        let today: chrono::NaiveDate = "2026-12-04".parse().expect("day");
        let sql = format!(
            "SELECT {} FROM (SELECT ?1 AS state, ?2 AS deadline)",
            RectificationState::overdue_sql("state", "deadline", today)
        );
        for state in RectificationState::ALL {
            for (deadline, past) in [("2026-12-03", true), ("2026-12-04", false)] {
                let overdue: bool = conn
                    .query_row(&sql, [state.code(), deadline], |r| r.get(0))
                    .expect("query");
                assert_eq!(
                    overdue,
                    state.is_overdue(past),
                    "{state:?} with deadline {deadline}"
                );
            }
        }
    }
}
