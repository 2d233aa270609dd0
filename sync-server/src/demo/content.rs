//! What the demo's inspectors record: fifteen enterprises of three Shanghai districts and
//! sixteen visits over five days, written as data. Names of enterprises and people are
//! made up; findings, posts and legal bases are those an inspector would write.

use anjian_core::{
    AnswerResult, CaseType, CreditCode, Industry, Level, ReviewAction, RiskGrade, ViolationKind,
};

use crate::error::{AppError, AppResult};

use AnswerResult::{Compliant, NonCompliant, NotApplicable};
use CaseType::{CrossDistrict, Joint, Routine, SpecialCampaign};
use Level::{General, Major};
use ViolationKind::{IllegalOperation, LabourDiscipline};

/// An enterprise of the demo.
pub(super) struct EnterpriseSpec {
    /// Registered name.
    pub name: &'static str,
    /// District code.
    pub district: &'static str,
    /// Key industry.
    pub industry: Industry,
    /// Risk grade.
    pub risk: RiskGrade,
    /// Where it is (latitude, longitude).
    pub location: (f64, f64),
}

/// One visit: who, when, where, what they recorded.
pub(super) struct CaseSpec {
    /// The inspector who opens the case (a demo username).
    pub inspector: &'static str,
    /// The rest of a joint team (demo usernames).
    pub team: &'static [&'static str],
    /// Days before today (China time) of the visit.
    pub days_ago: u32,
    /// Time of day of the visit (hour, minute), China time.
    pub at: (u32, u32),
    /// Index into `ENTERPRISES`.
    pub enterprise: usize,
    /// Kind of inspection.
    pub case_type: CaseType,
    /// Findings the opening inspector records.
    pub findings: &'static [FindingSpec],
    /// A checklist the opening inspector fills in.
    pub checklist: Option<ChecklistSpec>,
    /// Findings the first team member records on their own device.
    pub team_findings: &'static [FindingSpec],
    /// A level both the opener and the first team member set offline, differently: the
    /// index of the opener's finding, the opener's level and the team member's.
    pub dispute: Option<(usize, Level, Level)>,
    /// Whether the inspector submits the case for review.
    pub submit: bool,
    /// What the district's supervisor then does, with the comment.
    pub review: Option<(ReviewAction, &'static str)>,
}

/// A finding as recorded.
pub(super) struct FindingSpec {
    /// Description.
    pub description: &'static str,
    /// Category.
    pub category: &'static str,
    /// 依据条款.
    pub basis: &'static str,
    /// Where on site.
    pub place: &'static str,
    /// Level.
    pub level: Level,
    /// Three-violations record: kind, post, person.
    pub violation: Option<(ViolationKind, &'static str, &'static str)>,
    /// Caption of a photo of the hazard, if one is taken.
    pub photo: Option<&'static str>,
    /// Rectification ordered on site.
    pub rectification: Option<RectSpec>,
}

/// A rectification order and how far it got.
pub(super) struct RectSpec {
    /// 整改措施.
    pub measures: &'static str,
    /// Responsible person at the enterprise.
    pub responsible: &'static str,
    /// Deadline: days after the visit.
    pub days: u32,
    /// Where it stands now.
    pub stage: Stage,
}

/// Where a rectification stands.
pub(super) enum Stage {
    /// Ordered, nothing heard since.
    Ordered,
    /// The enterprise is working on it.
    InProgress,
    /// Re-inspected with this note (and a photo with this caption), then closed (销号).
    Closed {
        /// 复查意见.
        note: &'static str,
        /// Caption of a rectification evidence photo.
        evidence: Option<&'static str>,
    },
}

/// A checklist filled in during a visit.
pub(super) struct ChecklistSpec {
    /// Template id.
    pub template: &'static str,
    /// Answers, in the order given.
    pub answers: &'static [AnswerSpec],
}

/// An answer to a checklist item.
pub(super) struct AnswerSpec {
    /// Item id.
    pub item: &'static str,
    /// 符合, 不符合 or 不适用.
    pub result: AnswerResult,
    /// Note.
    pub note: &'static str,
    /// Post and person observed (three-violation items).
    pub observed: Option<(&'static str, &'static str)>,
    /// Rectification ordered for the finding a 不符合 answer creates.
    pub rectification: Option<RectSpec>,
}

/// A unified social credit code for the demo enterprise `index` of `district`: a company
/// (91), the district, an organisation code whose own check character follows GB 11714,
/// and the check character of GB 32100.
pub(super) fn credit_code(district: &str, index: usize) -> AppResult<CreditCode> {
    // Letters a credit code may hold (GB 32100 leaves out I, O, S, V and Z).
    const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let mut n = 7_919 * (index as u64 + 11) + 104_729;
    let mut org = String::from("MA1");
    for _ in 0..5 {
        org.push(char::from(CHARS[(n % CHARS.len() as u64) as usize]));
        n /= CHARS.len() as u64;
    }
    let value = |c: char| c.to_digit(36).unwrap_or(0);
    let sum: u32 = org
        .chars()
        .zip([3, 7, 9, 10, 5, 8, 4, 2])
        .map(|(c, w)| value(c) * w)
        .sum();
    org.push(match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        digit => char::from_digit(digit, 10).unwrap_or('0'),
    });
    let body = format!("91{district}{org}");
    let check = CreditCode::check_character(&body)
        .ok_or_else(|| AppError::Internal(format!("demo credit code body {body}")))?;
    Ok(format!("{body}{check}").parse()?)
}

const fn finding(
    description: &'static str,
    category: &'static str,
    basis: &'static str,
    place: &'static str,
    level: Level,
) -> FindingSpec {
    FindingSpec {
        description,
        category,
        basis,
        place,
        level,
        violation: None,
        photo: None,
        rectification: None,
    }
}

impl FindingSpec {
    const fn violation(
        mut self,
        kind: ViolationKind,
        post: &'static str,
        person: &'static str,
    ) -> Self {
        self.violation = Some((kind, post, person));
        self
    }

    const fn photo(mut self, caption: &'static str) -> Self {
        self.photo = Some(caption);
        self
    }

    const fn rectify(mut self, rectification: RectSpec) -> Self {
        self.rectification = Some(rectification);
        self
    }
}

const fn rect(
    measures: &'static str,
    responsible: &'static str,
    days: u32,
    stage: Stage,
) -> RectSpec {
    RectSpec {
        measures,
        responsible,
        days,
        stage,
    }
}

const fn closed(note: &'static str, evidence: Option<&'static str>) -> Stage {
    Stage::Closed { note, evidence }
}

const fn answer(item: &'static str, result: AnswerResult, note: &'static str) -> AnswerSpec {
    AnswerSpec {
        item,
        result,
        note,
        observed: None,
        rectification: None,
    }
}

impl AnswerSpec {
    const fn observed(mut self, post: &'static str, person: &'static str) -> Self {
        self.observed = Some((post, person));
        self
    }

    const fn rectify(mut self, rectification: RectSpec) -> Self {
        self.rectification = Some(rectification);
        self
    }
}

const fn visit(
    inspector: &'static str,
    days_ago: u32,
    at: (u32, u32),
    enterprise: usize,
    case_type: CaseType,
    findings: &'static [FindingSpec],
) -> CaseSpec {
    CaseSpec {
        inspector,
        team: &[],
        days_ago,
        at,
        enterprise,
        case_type,
        findings,
        checklist: None,
        team_findings: &[],
        dispute: None,
        submit: false,
        review: None,
    }
}

impl CaseSpec {
    const fn checklist(mut self, template: &'static str, answers: &'static [AnswerSpec]) -> Self {
        self.checklist = Some(ChecklistSpec { template, answers });
        self
    }

    const fn submitted(mut self) -> Self {
        self.submit = true;
        self
    }

    const fn reviewed(mut self, action: ReviewAction, text: &'static str) -> Self {
        self.review = Some((action, text));
        self
    }
}

const SAFETY_LAW_36: &str = "《中华人民共和国安全生产法》第三十六条";
const SAFETY_LAW_57: &str = "《中华人民共和国安全生产法》第五十七条";
const FIRE_LAW_16: &str = "《中华人民共和国消防法》第十六条";
const FIRE_LAW_21: &str = "《中华人民共和国消防法》第二十一条";
const FIRE_LAW_28: &str = "《中华人民共和国消防法》第二十八条";
const CONSTRUCTION_CRITERIA: &str = "《房屋市政工程生产安全重大事故隐患判定标准（2022版）》";

/// The demo's enterprises; `CaseSpec::enterprise` indexes this list.
pub(super) const ENTERPRISES: &[EnterpriseSpec] = &[
    EnterpriseSpec {
        name: "上海高桥联创化工有限公司",
        district: "310115",
        industry: Industry::HazardousChemicals,
        risk: RiskGrade::Major,
        location: (31.3552, 121.5751),
    },
    EnterpriseSpec {
        name: "上海外高桥港能危险品仓储有限公司",
        district: "310115",
        industry: Industry::HazardousChemicals,
        risk: RiskGrade::Significant,
        location: (31.3604, 121.5902),
    },
    EnterpriseSpec {
        name: "上海浦申燃气有限公司",
        district: "310115",
        industry: Industry::CityGas,
        risk: RiskGrade::Significant,
        location: (31.1903, 121.7008),
    },
    EnterpriseSpec {
        name: "上海浦江建设工程有限公司（前滩二期项目部）",
        district: "310115",
        industry: Industry::Construction,
        risk: RiskGrade::Significant,
        location: (31.1551, 121.4603),
    },
    EnterpriseSpec {
        name: "上海临港鑫钢特钢有限公司",
        district: "310115",
        industry: Industry::Metallurgy,
        risk: RiskGrade::Major,
        location: (30.9012, 121.9007),
    },
    EnterpriseSpec {
        name: "上海张江精密机械有限公司",
        district: "310115",
        industry: Industry::Machinery,
        risk: RiskGrade::General,
        location: (31.2053, 121.6004),
    },
    EnterpriseSpec {
        name: "上海西岸置业建设有限公司（传媒港项目部）",
        district: "310104",
        industry: Industry::Construction,
        risk: RiskGrade::Significant,
        location: (31.1702, 121.4551),
    },
    EnterpriseSpec {
        name: "上海龙华餐饮管理有限公司",
        district: "310104",
        industry: Industry::Commerce,
        risk: RiskGrade::General,
        location: (31.1753, 121.4502),
    },
    EnterpriseSpec {
        name: "上海漕河泾华力印务有限公司",
        district: "310104",
        industry: Industry::LightIndustry,
        risk: RiskGrade::General,
        location: (31.1681, 121.4003),
    },
    EnterpriseSpec {
        name: "上海徐家汇商城物业管理有限公司",
        district: "310104",
        industry: Industry::Commerce,
        risk: RiskGrade::General,
        location: (31.1952, 121.4371),
    },
    EnterpriseSpec {
        name: "上海外滩商厦有限公司",
        district: "310101",
        industry: Industry::Commerce,
        risk: RiskGrade::General,
        location: (31.2371, 121.4853),
    },
    EnterpriseSpec {
        name: "上海豫园餐饮有限公司",
        district: "310101",
        industry: Industry::Commerce,
        risk: RiskGrade::Significant,
        location: (31.2272, 121.4921),
    },
    EnterpriseSpec {
        name: "上海黄浦江岸建设工程有限公司（董家渡项目部）",
        district: "310101",
        industry: Industry::Construction,
        risk: RiskGrade::Significant,
        location: (31.2153, 121.5052),
    },
    EnterpriseSpec {
        name: "上海申城危险货物运输有限公司",
        district: "310101",
        industry: Industry::Transport,
        risk: RiskGrade::Significant,
        location: (31.2251, 121.4782),
    },
    EnterpriseSpec {
        name: "上海黄浦液化石油气供应有限公司",
        district: "310101",
        industry: Industry::CityGas,
        risk: RiskGrade::Significant,
        location: (31.2102, 121.4803),
    },
];

/// The visits, in the order they happen (oldest first).
pub(super) const CASES: &[CaseSpec] = &[
    // Four days ago.
    visit("lina", 4, (9, 30), 0, SpecialCampaign, &[
        finding(
            "甲类罐区T-201至T-204可燃气体检测报警器3台处于停用状态，控制室无报警信号",
            "报警与切断",
            "安监总管三〔2017〕121号 第十二条",
            "甲类罐区",
            Major,
        )
        .photo("停用的可燃气体检测报警器")
        .rectify(rect(
            "立即恢复报警器运行并经有资质单位校验，报警信号接入控制室DCS；恢复前罐区停止收发料作业",
            "生产部经理 顾海峰",
            2,
            Stage::InProgress,
        )),
        finding(
            "丙烯酸装置区压力容器E-105安全阀铅封缺失，校验合格证已过期",
            "设备设施",
            SAFETY_LAW_36,
            "丙烯酸装置区",
            General,
        )
        .rectify(rect(
            "停用并送检安全阀，校验合格后加铅封复装，建立安全附件台账",
            "设备科科长 钱伟",
            7,
            Stage::Ordered,
        )),
    ])
    .checklist("hazchem-three-violations", &[
        answer("hc-tv-001", Compliant, "抽查动火安全作业票3张，审批签字齐全"),
        answer("hc-tv-019", NonCompliant, "两名外操人员在装置区未穿防静电工作服")
            .observed("操作工（外操）", "孙某")
            .rectify(rect(
                "对当班人员进行劳动防护用品使用教育，班组长每班检查着装并记录",
                "丙烯酸车间主任 蒋建华",
                3,
                closed("复查时当班外操人员均按规定穿戴防静电工作服，班前检查记录齐全", None),
            )),
        answer("hc-tv-024", Compliant, ""),
        answer("hc-tv-025", NotApplicable, "检查时无特殊作业"),
    ])
    .submitted(),
    visit("wujun", 4, (14, 0), 1, Routine, &[
        finding(
            "2号危险化学品仓库内氧化剂（过氧化钠）与易燃液体（乙酸乙酯）混存",
            "储存",
            "安监总管三〔2017〕121号 第二十条",
            "2号仓库",
            Major,
        )
        .photo("混存的氧化剂与易燃液体")
        .rectify(rect(
            "立即将氧化剂移至专用库房，按禁配要求分区分类储存并更新储存平面图",
            "仓储部经理 冯立新",
            1,
            closed("已将过氧化钠移至3号专用库房单独存放，现场复查符合要求", Some("整改后的3号专用库房")),
        )),
        finding(
            "1号仓库消防通道堆放空托盘，通道净宽不足2米",
            "安全管理",
            FIRE_LAW_28,
            "1号仓库",
            General,
        )
        .rectify(rect(
            "清理消防通道内堆放物，划定禁止占用标线并纳入日常巡查",
            "仓储部经理 冯立新",
            3,
            Stage::Ordered,
        )),
    ])
    .submitted(),
    visit("wangqiang", 4, (10, 0), 6, Routine, &[
        finding(
            "8号楼地下室顶板高大模板支撑体系未按专项施工方案搭设，立杆间距1.2米，大于方案规定的0.9米",
            "防坍塌",
            CONSTRUCTION_CRITERIA,
            "8号楼地下室",
            Major,
        )
        .photo("立杆间距实测")
        .rectify(rect(
            "立即停止该区域混凝土浇筑，按专项方案整改支撑体系，经验收合格后方可浇筑",
            "项目经理 吕俊",
            3,
            Stage::InProgress,
        )),
        finding(
            "两名钢筋工在作业面未佩戴安全帽",
            "个体防护",
            SAFETY_LAW_57,
            "6号楼三层作业面",
            General,
        )
        .violation(IllegalOperation, "钢筋工", "黄某、陈某")
        .rectify(rect(
            "对作业人员进行安全教育，班组每日班前检查个人防护用品",
            "安全员 邱志强",
            1,
            closed("复查时作业面人员均佩戴安全帽，班前讲话记录已补充", None),
        )),
    ])
    .submitted()
    .reviewed(ReviewAction::Return, "高大模板支撑体系整改请附验收记录和整改后照片后重新提交"),
    visit("liuyang", 4, (9, 0), 10, Routine, &[
        finding(
            "三楼东侧安全出口被货物堵塞",
            "安全管理",
            FIRE_LAW_28,
            "三楼东侧安全出口",
            General,
        )
        .photo("被堵塞的安全出口")
        .rectify(rect(
            "立即清理安全出口堆放物，落实每日防火巡查",
            "物业经理 宋佳",
            1,
            closed("安全出口已清理畅通，防火巡查记录已建立", Some("清理后的安全出口")),
        )),
        finding(
            "消防控制室值班人员未持证上岗，夜间仅一人值班",
            "人员资质",
            FIRE_LAW_21,
            "消防控制室",
            General,
        )
        .rectify(rect(
            "安排持证人员值班，每班不少于两人",
            "物业经理 宋佳",
            7,
            Stage::InProgress,
        )),
    ])
    .submitted()
    .reviewed(ReviewAction::Approve, "整改措施落实，同意"),
    // Three days ago.
    CaseSpec {
        team: &["wujun"],
        team_findings: &[finding(
            "站区4具推车式干粉灭火器压力不足，指针处于红区",
            "消防器材",
            FIRE_LAW_16,
            "站区消防器材点",
            General,
        )
        .rectify(rect(
            "更换或重新充装灭火器，建立月度检查记录",
            "安全员 陶静",
            3,
            Stage::Ordered,
        ))],
        dispute: Some((0, Major, General)),
        ..visit("lina", 3, (9, 30), 2, Joint, &[
            finding(
                "川沙高中压调压站紧急切断阀处于手动旁通状态，超压自动切断功能未投用",
                "调压设施",
                "《城镇燃气经营安全重大隐患判定标准》（建城规〔2023〕4号）",
                "川沙调压站",
                General,
            )
            .photo("处于开启状态的旁通阀")
            .rectify(rect(
                "恢复紧急切断阀自动切断功能并做联动测试，旁通阀加锁管理",
                "运行部经理 石磊",
                5,
                Stage::Ordered,
            )),
        ])
        .checklist("city-gas-pipelines", &[
            answer("cg-p-010", Compliant, "站内可燃气体报警装置运行正常"),
            answer("cg-p-013", NonCompliant, "调压间1台防爆灯具损坏，防爆挠性管脱落"),
            answer("cg-p-014", Compliant, ""),
            answer("cg-p-011", NotApplicable, "站区周边无中压以上地下管线"),
        ])
    },
    visit("zhoujie", 3, (14, 30), 7, Routine, &[])
        .checklist("city-gas-users", &[
            answer("cg-u-001", NonCompliant, "后厨可燃气体报警器未通电，紧急切断阀与报警器未联动")
                .rectify(rect(
                    "恢复报警器供电并与紧急切断阀联动调试，纳入每日开餐前检查",
                    "店长 林晓东",
                    2,
                    closed("已更换报警器并与紧急切断阀联动，现场测试报警后切断阀正常关闭", Some("报警器与切断阀联动测试")),
                )),
            answer("cg-u-006", Compliant, ""),
            answer("cg-u-007", NonCompliant, "灶具连接软管长约3米并穿越隔墙")
                .rectify(rect(
                    "更换为符合要求的连接管，长度不超过2米且不穿越墙体",
                    "店长 林晓东",
                    3,
                    Stage::Ordered,
                )),
            answer("cg-u-016", Compliant, "抽问2名厨师，掌握关阀、开窗、禁用明火的处置方法"),
        ])
        .submitted(),
    visit("zhangwei", 3, (10, 0), 11, Routine, &[
        finding(
            "厨房排油烟管道油垢积聚严重，未按规定定期清洗",
            "防火防爆",
            FIRE_LAW_16,
            "一楼后厨",
            General,
        )
        .photo("油垢积聚的排油烟管道")
        .rectify(rect(
            "委托专业单位清洗排油烟管道，建立每季度清洗记录",
            "行政总厨 潘国平",
            2,
            Stage::Ordered,
        )),
    ])
    .checklist("city-gas-users", &[
        answer("cg-u-017", Compliant, "燃气设施均在地上一层"),
        answer("cg-u-008", NonCompliant, "2只液化石油气钢瓶超过检验有效期")
            .rectify(rect(
                "停用超期钢瓶，由供气企业更换检验合格的钢瓶",
                "行政总厨 潘国平",
                1,
                Stage::InProgress,
            )),
        answer("cg-u-015", Compliant, ""),
    ])
    .submitted()
    .reviewed(ReviewAction::Return, "请补充排油烟管道清洗合同及超期钢瓶更换凭证"),
    // Two days ago.
    visit("xugang", 2, (9, 0), 3, Routine, &[
        finding(
            "基坑东侧临边防护栏杆缺失约15米，未设置警示标志",
            "现场管理",
            "《建设工程安全生产管理条例》第二十八条",
            "基坑东侧",
            General,
        )
        .photo("缺失的基坑临边防护")
        .rectify(rect(
            "立即恢复临边防护栏杆，挂设密目网和警示标志",
            "施工员 韩磊",
            1,
            closed("临边防护已恢复，警示标志齐全", Some("恢复后的临边防护")),
        )),
    ])
    .checklist("construction-three-violations", &[
        answer("cn-tv-002", NonCompliant, "塔吊司机操作资格证书已过期仍被安排上岗")
            .observed("项目经理", "谢某")
            .rectify(rect(
                "立即停止该司机作业，更换持证司机，核查全部特种作业人员证书",
                "项目经理 谢海",
                1,
                Stage::InProgress,
            )),
        answer("cn-tv-008", Compliant, "力矩限制器、起重量限制器试验有效"),
        answer("cn-tv-013", NonCompliant, "架子工在约6米高处作业未系挂安全带").observed("架子工", "马某"),
        answer("cn-tv-019", Compliant, ""),
    ])
    .submitted(),
    visit("wangqiang", 2, (10, 0), 8, Routine, &[
        finding(
            "员工宿舍设置在油墨仓库上方，与仓库位于同一建筑内",
            "总图布置",
            "《中华人民共和国安全生产法》第四十二条",
            "2号楼",
            Major,
        )
        .photo("油墨仓库上方的员工宿舍")
        .rectify(rect(
            "立即停止使用该宿舍，另行安排员工住宿",
            "总经理 方卫东",
            5,
            Stage::InProgress,
        )),
        finding(
            "废水处理池（有限空间）入口未设置安全警示标志",
            "现场管理",
            "《中华人民共和国安全生产法》第三十五条",
            "污水处理站",
            General,
        )
        .rectify(rect(
            "在有限空间入口设置警示标志和告知牌，建立有限空间台账",
            "设备主管 曹阳",
            3,
            Stage::Ordered,
        )),
    ]),
    visit("zhaomin", 2, (14, 0), 12, Routine, &[
        finding(
            "深基坑北侧1米范围内堆放钢筋等重物，超出支护设计允许荷载",
            "防坍塌",
            CONSTRUCTION_CRITERIA,
            "基坑北侧",
            Major,
        )
        .photo("基坑边堆放的钢筋")
        .rectify(rect(
            "立即清除基坑边堆载，按支护设计设置堆载限界并加强基坑监测",
            "项目经理 姚军",
            1,
            Stage::Ordered,
        )),
        finding(
            "电工未持证进行临时配电箱接线",
            "人员资质",
            "《中华人民共和国安全生产法》第三十条",
            "临时配电房",
            General,
        )
        .violation(IllegalOperation, "电工", "何某")
        .rectify(rect(
            "停止无证人员电工作业，由持证电工重新检查接线",
            "施工员 郑涛",
            2,
            Stage::Ordered,
        )),
    ])
    .submitted(),
    // Yesterday.
    visit("lina", 1, (15, 0), 4, SpecialCampaign, &[
        finding(
            "炼钢车间休息室设置在熔融金属吊运跨地坪区域内",
            "总图布置",
            "《工贸企业重大事故隐患判定标准》（应急管理部令第10号）",
            "炼钢车间",
            Major,
        )
        .photo("吊运跨下方的休息室")
        .rectify(rect(
            "立即停止使用该休息室，另址设置并拆除原休息室",
            "炼钢厂厂长 孔令海",
            10,
            Stage::Ordered,
        )),
        finding(
            "行车工吊运作业时使用手机",
            "劳动纪律",
            SAFETY_LAW_57,
            "原料跨",
            General,
        )
        .violation(LabourDiscipline, "行车工", "刘某"),
        finding(
            "转炉煤气回收区域未设置固定式一氧化碳检测报警装置",
            "报警与切断",
            SAFETY_LAW_36,
            "转炉煤气回收区域",
            General,
        )
        .rectify(rect(
            "按标准设置固定式一氧化碳检测报警装置并接入值班室",
            "设备部部长 江涛",
            15,
            Stage::Ordered,
        )),
    ])
    .checklist("industry-trade-three-violations", &[
        answer("it-tv-012", Compliant, ""),
        answer("it-tv-019", NonCompliant, "维修工单人进入煤气区域，未携带一氧化碳检测报警仪")
            .observed("维修工", "严某"),
    ])
    .submitted(),
    visit("wangqiang", 1, (9, 30), 14, CrossDistrict, &[
        finding(
            "钢瓶库房可燃气体报警器故障未修复",
            "报警与切断",
            SAFETY_LAW_36,
            "钢瓶库房",
            General,
        )
        .photo("故障的可燃气体报警器")
        .rectify(rect(
            "立即维修报警器并校验，故障期间加强人工巡检",
            "站长 邵建平",
            5,
            Stage::Ordered,
        )),
        finding(
            "送气工在钢瓶库房内吸烟",
            "防火防爆",
            FIRE_LAW_21,
            "钢瓶库房",
            General,
        )
        .violation(LabourDiscipline, "送气工", "周某"),
    ])
    .submitted(),
    visit("zhangwei", 1, (10, 0), 13, Routine, &[
        finding(
            "3辆危险货物运输车辆卫星定位装置离线，企业未实施动态监控",
            "安全管理",
            "《道路危险货物运输管理规定》",
            "车辆动态监控中心",
            General,
        )
        .rectify(rect(
            "修复车载终端，落实24小时动态监控值班",
            "安全经理 孟凡",
            3,
            Stage::Ordered,
        )),
        finding(
            "驾驶员连续驾驶4小时以上未停车休息",
            "劳动纪律",
            "《中华人民共和国道路交通安全法实施条例》第六十二条",
            "停车场",
            General,
        )
        .violation(LabourDiscipline, "驾驶员", "钱某"),
    ])
    .submitted(),
    // Today.
    visit("lina", 0, (9, 30), 5, Routine, &[
        finding(
            "叉车司机未取得特种设备作业人员证上岗",
            "人员资质",
            "《中华人民共和国特种设备安全法》第十四条",
            "成品仓库",
            General,
        )
        .violation(IllegalOperation, "叉车司机", "沈某")
        .rectify(rect(
            "停止无证人员驾驶叉车，组织培训取证",
            "行政部经理 卢敏",
            7,
            Stage::Ordered,
        )),
        finding(
            "2号冲床光电保护装置被短接",
            "设备设施",
            SAFETY_LAW_36,
            "冲压车间",
            General,
        )
        .photo("被短接的光电保护装置")
        .rectify(rect(
            "恢复光电保护装置并检查全部冲床安全装置",
            "冲压车间主任 贺斌",
            3,
            Stage::Ordered,
        )),
    ]),
    visit("zhoujie", 0, (10, 30), 9, Routine, &[
        finding(
            "地下一层美食广场2家商户使用瓶装液化石油气",
            "用气场所",
            "《燃气工程项目规范》GB 55009-2021",
            "地下一层美食广场",
            Major,
        )
        .photo("地下一层的液化石油气钢瓶")
        .rectify(rect(
            "立即停止使用并清退液化石油气钢瓶，改用管道天然气或电能",
            "物业经理 严华",
            1,
            Stage::Ordered,
        )),
    ]),
    visit("liuyang", 0, (8, 30), 14, Routine, &[
        finding(
            "钢瓶库房照明灯具和开关不防爆",
            "防火防爆",
            SAFETY_LAW_36,
            "钢瓶库房",
            General,
        )
        .rectify(rect(
            "更换为防爆灯具和开关",
            "站长 邵建平",
            3,
            Stage::Ordered,
        )),
    ]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_codes_validate_and_carry_the_district() {
        for (index, enterprise) in ENTERPRISES.iter().enumerate() {
            let code = credit_code(enterprise.district, index).expect("valid code");
            assert_eq!(code.registration_district(), enterprise.district);
        }
    }

    #[test]
    fn every_visit_names_a_known_enterprise_and_valid_dispute() {
        for case in CASES {
            assert!(case.enterprise < ENTERPRISES.len());
            if let Some((index, _, _)) = case.dispute {
                assert!(index < case.findings.len() && !case.team.is_empty());
            }
        }
    }
}
