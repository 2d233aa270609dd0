//! The core's coded enumerations as FFI enums. Each has `code()` (the stable English code
//! stored in documents) and `label()` (the Chinese label to show), both read from the core,
//! and converts to and from the core's enum.

/// Declares an FFI enum mirroring a core enum variant for variant, with conversions both
/// ways and exported `code()` and `label()` methods that ask the core.
macro_rules! mirror_enum {
    ($(#[$doc:meta])* $name:ident => $core:path { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl From<$name> for $core {
            fn from(value: $name) -> Self {
                match value { $($name::$variant => <$core>::$variant),+ }
            }
        }

        impl From<$core> for $name {
            fn from(value: $core) -> Self {
                match value { $(<$core>::$variant => $name::$variant),+ }
            }
        }

        #[uniffi::export]
        impl $name {
            /// The stable English code stored in case documents (`major`, `hot_work`, …).
            pub fn code(&self) -> String {
                <$core>::from(*self).code().to_owned()
            }

            /// The Chinese label to show the inspector (重大隐患, 动火作业, …).
            pub fn label(&self) -> String {
                <$core>::from(*self).label().to_owned()
            }
        }
    };
}

mirror_enum!(
    /// The key industries of work-safety supervision.
    Industry => anjian_core::Industry {
        /// 危险化学品
        HazardousChemicals,
        /// 非煤矿山
        NonCoalMine,
        /// 煤矿
        CoalMine,
        /// 烟花爆竹
        Fireworks,
        /// 冶金
        Metallurgy,
        /// 有色
        Nonferrous,
        /// 建材
        BuildingMaterials,
        /// 机械
        Machinery,
        /// 轻工
        LightIndustry,
        /// 纺织
        Textile,
        /// 烟草
        Tobacco,
        /// 商贸
        Commerce,
        /// 建筑施工
        Construction,
        /// 城镇燃气
        CityGas,
        /// 交通运输
        Transport,
        /// 消防
        FireSafety,
        /// 特种设备
        SpecialEquipment,
    }
);

mirror_enum!(
    /// Risk grade of an enterprise (风险分级), red to blue.
    RiskGrade => anjian_core::RiskGrade {
        /// 重大风险 (red)
        Major,
        /// 较大风险 (orange)
        Significant,
        /// 一般风险 (yellow)
        General,
        /// 低风险 (blue)
        Low,
    }
);

mirror_enum!(
    /// The kind of inspection a case records.
    CaseType => anjian_core::CaseType {
        /// 日常检查
        Routine,
        /// 专项检查
        SpecialCampaign,
        /// 联合执法
        Joint,
        /// 异地交叉执法
        CrossDistrict,
        /// 集中执法
        Concentrated,
        /// 举报核查
        ComplaintFollowUp,
    }
);

mirror_enum!(
    /// Review state of a case.
    ReviewState => anjian_core::ReviewState {
        /// 草稿
        Draft,
        /// 已提交
        Submitted,
        /// 退回
        Returned,
        /// 已审核
        Approved,
    }
);

mirror_enum!(
    /// What a person does in a case's review.
    ReviewAction => anjian_core::ReviewAction {
        /// 提交审核 (inspectors)
        Submit,
        /// 退回 (supervisors)
        Return,
        /// 审核通过 (supervisors; locks the case)
        Approve,
        /// 重新打开 (supervisors)
        Reopen,
        /// 批注
        Comment,
    }
);

mirror_enum!(
    /// Hazard level of a finding.
    Level => anjian_core::Level {
        /// 一般隐患
        General,
        /// 重大事故隐患
        Major,
    }
);

mirror_enum!(
    /// Where a finding's rectification stands in the closed loop (隐患排查治理闭环).
    RectificationState => anjian_core::RectificationState {
        /// No rectification ordered yet (未下达整改).
        None,
        /// 已下达整改
        Ordered,
        /// 整改中
        InProgress,
        /// 已复查
        Reinspected,
        /// 已销号
        Closed,
        /// 逾期未整改
        Overdue,
    }
);

mirror_enum!(
    /// What a step of a hazard's follow-up records.
    HazardAction => anjian_core::HazardAction {
        /// 现场处理措施 (during the visit only)
        Onsite,
        /// 延期
        Extend,
        /// 复查
        Reinspect,
        /// 销号
        Close,
        /// 挂牌督办
        List,
        /// 治理方案
        Plan,
        /// 进展报告
        Progress,
        /// 摘牌
        Delist,
    }
);

mirror_enum!(
    /// The result of a re-inspection (复查).
    ReinspectionResult => anjian_core::ReinspectionResult {
        /// 合格
        Pass,
        /// 不合格
        Fail,
    }
);

mirror_enum!(
    /// A measure taken on site (现场处理措施, 安全生产法 第六十五条).
    OnsiteMeasure => anjian_core::OnsiteMeasure {
        /// 责令立即排除
        EliminateNow,
        /// 责令从危险区域撤出作业人员
        Evacuate,
        /// 责令暂时停产停业或者停止使用相关设施、设备
        Suspend,
        /// 查封、扣押
        Seize,
    }
);

mirror_enum!(
    /// The kinds of enforcement documents (执法文书).
    WritKind => anjian_core::WritKind {
        /// 现场检查记录
        InspectionRecord,
        /// 责令限期整改指令书
        RectificationOrder,
        /// 现场处理措施决定书
        OnsiteDecision,
        /// 整改复查意见书
        ReinspectionOpinion,
    }
);

mirror_enum!(
    /// Where an enforcement document stands.
    WritState => anjian_core::WritState {
        /// 草稿
        Draft,
        /// 待签 (numbered and frozen)
        Sealed,
        /// 已签发
        Issued,
        /// 作废
        Voided,
    }
);

mirror_enum!(
    /// Who signs an enforcement document.
    SignerRole => anjian_core::SignerRole {
        /// 执法人员
        Inspector,
        /// 被检查单位
        Enterprise,
    }
);

mirror_enum!(
    /// The three violations (三违).
    ViolationKind => anjian_core::ViolationKind {
        /// 违章指挥
        IllegalCommand,
        /// 违章作业
        IllegalOperation,
        /// 违反劳动纪律
        LabourDiscipline,
    }
);

mirror_enum!(
    /// The answer to a checklist item.
    AnswerResult => anjian_core::AnswerResult {
        /// 符合
        Compliant,
        /// 不符合 (creates a finding)
        NonCompliant,
        /// 不适用
        NotApplicable,
    }
);

mirror_enum!(
    /// What a checklist template is for.
    TemplateKind => anjian_core::TemplateKind {
        /// “三违”行为清单 by post.
        ThreeViolations,
        /// 特殊作业 (GB 30871-2022).
        SpecialOperation,
        /// 重大事故隐患判定标准.
        MajorHazard,
        /// Any other routine checklist.
        Routine,
    }
);

mirror_enum!(
    /// The special operation a checklist template checks.
    Operation => anjian_core::Operation {
        /// 动火作业
        HotWork,
        /// 受限空间作业
        ConfinedSpace,
        /// 高处作业
        WorkAtHeight,
        /// 吊装作业
        Lifting,
        /// 临时用电作业
        TemporaryPower,
        /// 盲板抽堵作业
        BlindPlate,
        /// 动土作业
        Excavation,
        /// 断路作业
        RoadClosure,
        /// 检维修作业
        Maintenance,
        /// 开停车
        StartupShutdown,
    }
);
