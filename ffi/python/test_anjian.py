"""The generated Python bindings, used the way an app team would: two inspectors record a
case offline, sync through a real Anjian sync server, and read each other's work.

Run by `ffi/scripts/test-bindings`, which builds the library and the server, generates the
`anjian` module and sets:
  ANJIAN_PYTHON_BINDINGS  folder holding anjian.py and libanjian_ffi.so
  ANJIAN_SERVER_BIN       the anjian-sync-server binary
  ANJIAN_FIXTURES         folder with tank-farm.jpg
"""

import asyncio
import json
import urllib.request
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.environ["ANJIAN_PYTHON_BINDINGS"])

import anjian  # noqa: E402  (generated module, found through the path above)

SERVER_BIN = os.environ["ANJIAN_SERVER_BIN"]
PHOTO = os.path.join(os.environ["ANJIAN_FIXTURES"], "tank-farm.jpg")
PASSWORD = "巡查安全2026!"
DISTRICT = "310101"
VISIT = "2026-11-20T09:30:00+08:00"
# 统一社会信用代码 with a correct check character (GB 32100-2015).
CREDIT_CODE = "91310101MA0000001M"
WAIT = 60  # seconds a sync may take before a test gives up


class SyncServer:
    """The real sync server as a child process on 127.0.0.1:0 with its own data folder;
    users are added with the server's own CLI before it starts."""

    def __init__(self, data, users):
        for i, (username, name, department) in enumerate(users):
            subprocess.run(
                [SERVER_BIN, "--data", data, "user", "add", "--username", username,
                 "--name", name, "--role", "inspector", "--district", DISTRICT,
                 "--department", department, "--password", PASSWORD],
                check=True, stdout=subprocess.DEVNULL)
            # Each inspector's 执法证: 31010000001, 31010000002, …
            subprocess.run(
                [SERVER_BIN, "--data", data, "user", "certify", username,
                 "--number", f"3101000000{i + 1}", "--valid-until", "2030-12-31"],
                check=True, stdout=subprocess.DEVNULL)
        self.process = subprocess.Popen(
            [SERVER_BIN, "--data", data, "serve", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "RUST_LOG": "warn"})
        # "安检 Anjian sync server on http://127.0.0.1:PORT (data in …)"
        self.url = None
        for line in self.process.stdout:
            if " on http://" in line:
                self.url = line.split(" on ", 1)[1].split(" ", 1)[0]
                break
        if self.url is None:
            self.process.kill()
            raise RuntimeError("the server exited before it listened")
        # Keep reading what the server prints, so that a full pipe never blocks it.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


class Listener(anjian.SyncListener):
    """What an app's sync screen does: remember progress, wake the waiter at the end."""

    def __init__(self):
        self.progress = []
        self.result = None
        self.error = None
        self.done = threading.Event()

    def on_progress(self, progress):
        self.progress.append(progress)

    def on_finished(self, result):
        self.result = result
        self.done.set()

    def on_failed(self, error):
        self.error = error
        self.done.set()


class Progress(anjian.SyncProgressListener):
    def __init__(self):
        self.reports = []

    def on_progress(self, progress):
        self.reports.append(progress)


def inspector(user_id, name, department):
    return anjian.Identity(user_id=user_id, name=name, department=department, district=DISTRICT)


def enterprise(credit_code=CREDIT_CODE):
    return anjian.Enterprise(
        credit_code=credit_code, name="上海滨江化工有限公司", district=DISTRICT,
        industry=anjian.Industry.HAZARDOUS_CHEMICALS, risk_grade=anjian.RiskGrade.SIGNIFICANT)


class InspectorAppTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        anjian.init_library("warn")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.server = SyncServer(
            os.path.join(cls.tmp.name, "server"),
            [("zhangwei", "张伟", "应急管理"), ("lina", "李娜", "消防")])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def open_store(self, name, identity):
        store = anjian.InspectorStore.open(os.path.join(self.tmp.name, name), identity)
        self.addCleanup(store.close_store)
        return store

    def open_case_with_enterprise(self, store):
        store.register_enterprise(enterprise())
        return store.open_case(anjian.NewCase(
            enterprise=CREDIT_CODE, case_type=anjian.CaseType.ROUTINE, opened_at=VISIT))

    def test_offline_case_syncs_and_the_other_inspector_reads_it(self):
        zhang = self.open_store("zhang-flow.db", inspector("zhangwei", "张伟", "应急管理"))
        li = self.open_store("li-flow.db", inspector("lina", "李娜", "消防"))

        # Offline: a case with a major finding, a photo, a checklist answer, an order.
        case_id = self.open_case_with_enterprise(zhang)
        finding_id = zhang.add_finding(case_id, anjian.NewFinding(
            description="液氯储罐区可燃有毒气体检测报警装置未投入使用",
            level=anjian.Level.MAJOR, category="报警与切断", place="液氯罐区",
            legal_basis="安监总管三〔2017〕121号 第十二条"))
        photo = zhang.ingest_photo_file(PHOTO)
        self.assertEqual(photo.mime, "image/jpeg")
        self.assertEqual((photo.width, photo.height), (800, 600))
        zhang.attach_photo(case_id, anjian.PhotoTarget.FINDING(finding_id=finding_id),
                           photo.sha256, "报警控制器断电")
        checklist_id = zhang.attach_checklist(case_id, "hot-work")
        item = next(t for t in zhang.templates() if t.id == "hot-work").items[0]
        created = zhang.answer_item(case_id, checklist_id, item.id, anjian.AnswerInput(
            result=anjian.AnswerResult.NON_COMPLIANT, note="二号车间动火无作业票"))
        self.assertIsNotNone(created, "a 不符合 answer creates a finding")
        zhang.order_rectification(case_id, finding_id, anjian.RectificationOrder(
            measures="恢复报警装置并联调联试", deadline="2026-11-27", responsible="王建国"))

        case = zhang.case(case_id)
        self.assertEqual(len(case.findings), 2)
        recorded = next(f for f in case.findings if f.id == finding_id)
        self.assertEqual([p.sha256 for p in recorded.photos], [photo.sha256])
        self.assertEqual(recorded.rectification.state, anjian.RectificationState.ORDERED)
        self.assertEqual(recorded.rectification.ordered_level, anjian.Level.MAJOR,
                         "the order keeps the level it was given at")
        self.assertEqual(case.checklists[0].entries[0].answer.finding_id, created)
        self.assertEqual(len(zhang.pending_uploads()), 2, "original and thumbnail wait")
        self.assertIsNone(zhang.last_sync_result())

        # Sync with a listener and a handle, as a sync screen does.
        token = zhang.login(self.server.url, "zhangwei", PASSWORD, "张伟的手机")
        listener = Listener()
        handle = zhang.sync_now(self.server.url, token, listener)
        self.assertTrue(listener.done.wait(WAIT), "sync ended")
        self.assertIsNone(listener.error)
        self.assertTrue(handle.is_finished())
        self.assertIn(case_id, listener.result.cases)
        self.assertEqual(listener.result.blobs_uploaded, 2)
        self.assertTrue(listener.progress, "progress was reported")
        self.assertEqual(zhang.last_sync_result(), listener.result)
        self.assertIsNotNone(zhang.last_synced_at(self.server.url))
        self.assertIsNone(li.last_synced_at(self.server.url), "li has not synced yet")
        self.assertEqual(zhang.pending_uploads(), [])
        upload = zhang.upload_state(case_id)
        self.assertEqual(upload.acknowledged, upload.changes)

        # The other inspector awaits a sync (asyncio) and reads the case.
        li_token = li.login(self.server.url, "lina", PASSWORD, "李娜的平板")
        progress = Progress()
        result = asyncio.run(li.sync(self.server.url, li_token, progress))
        self.assertIn(case_id, result.cases)
        self.assertEqual(result.thumbnails_downloaded, 1)
        received = li.case(case_id)
        theirs = next(f for f in received.findings if f.id == finding_id)
        self.assertEqual(theirs.description, "液氯储罐区可燃有毒气体检测报警装置未投入使用")
        self.assertEqual(theirs.recorded_by, "zhangwei")
        self.assertEqual(theirs.level, anjian.Level.MAJOR)
        # Sync brought the thumbnail; the original comes when the inspector opens it.
        [received_photo] = theirs.photos
        self.assertEqual(received_photo.caption, "报警控制器断电")
        self.assertTrue(li.photo_bytes(received_photo.thumbnail).startswith(b"\xff\xd8"))
        self.assertFalse(li.has_photo_bytes(photo.sha256))
        with open(PHOTO, "rb") as f:
            original = f.read()
        self.assertEqual(li.fetch_original(self.server.url, li_token, photo.sha256), original)
        self.assertEqual(li.heads(case_id), zhang.heads(case_id))

        # Both judge the level offline; after syncing, the disagreement is a conflict
        # naming both inspectors, and resolving it is a new judgement everyone gets.
        zhang.set_finding_level(case_id, finding_id, anjian.Level.MAJOR)
        li.set_finding_level(case_id, finding_id, anjian.Level.GENERAL)
        asyncio.run(li.sync(self.server.url, li_token, None))
        asyncio.run(zhang.sync(self.server.url, token, None))
        conflicts = zhang.conflicts(case_id)
        level = next(c for c in conflicts if c.path[-1] == "level")
        self.assertEqual(sorted((v.written_by, v.display) for v in level.values),
                         [("lina", "general"), ("zhangwei", "major")])
        zhang.resolve_conflict(case_id, level.path, anjian.Resolution.WRITE(
            value=anjian.FieldValue.TEXT(value="major")))
        self.assertEqual(zhang.conflicts(case_id), [])
        asyncio.run(zhang.sync(self.server.url, token, None))
        asyncio.run(li.sync(self.server.url, li_token, None))
        self.assertEqual(li.conflicts(case_id), [])
        actions = [h.action for h in li.history(case_id)]
        self.assertIn("resolve_conflict", actions)

        # Extended once, re-inspected 不合格 then 合格, then handed in for review: the other
        # device sees every step.
        zhang.follow_up(case_id, finding_id, anjian.HazardStep.EXTEND(
            deadline="2027-01-31", reason="备件到货延迟，企业书面申请"))
        with self.assertRaises(anjian.AnjianError.Conflict):
            zhang.follow_up(case_id, finding_id, anjian.HazardStep.REINSPECT(
                result=anjian.ReinspectionResult.FAIL, note="仍未投用", deadline=None,
                escalation=""))
        zhang.follow_up(case_id, finding_id, anjian.HazardStep.REINSPECT(
            result=anjian.ReinspectionResult.FAIL, note="仍未投用", deadline="2027-02-15",
            escalation=""))
        with self.assertRaises(anjian.AnjianError.Conflict):
            zhang.follow_up(case_id, finding_id, anjian.HazardStep.REINSPECT(
                result=anjian.ReinspectionResult.PASS, note=" ", deadline=None,
                escalation=""))
        zhang.follow_up(case_id, finding_id, anjian.HazardStep.REINSPECT(
            result=anjian.ReinspectionResult.PASS, note="报警装置已恢复，联调合格",
            deadline=None, escalation=""))
        zhang.review(case_id, anjian.ReviewAction.SUBMIT, "请审核")
        asyncio.run(zhang.sync(self.server.url, token, None))
        asyncio.run(li.sync(self.server.url, li_token, None))
        handed_in = li.case(case_id)
        self.assertEqual(handed_in.state, anjian.ReviewState.SUBMITTED)
        self.assertEqual([(e.kind, e.text) for e in handed_in.review_events], [("submit", "请审核")])
        rectification = next(f for f in handed_in.findings if f.id == finding_id).rectification
        self.assertEqual(rectification.state, anjian.RectificationState.REINSPECTED)
        self.assertEqual(rectification.reinspection.note, "报警装置已恢复，联调合格")
        self.assertEqual(rectification.reinspection.result, anjian.ReinspectionResult.PASS)
        self.assertEqual(rectification.deadline, "2027-02-15")
        events = next(f for f in handed_in.findings if f.id == finding_id).events
        self.assertEqual([type(e.step) for e in events],
                         [anjian.HazardStep.EXTEND, anjian.HazardStep.REINSPECT,
                          anjian.HazardStep.REINSPECT])
        self.assertEqual([e.previous_deadline for e in events], ["2026-11-27", "2027-01-31", None])
        self.assertEqual(events[1].step.result, anjian.ReinspectionResult.FAIL)

    def test_a_teammate_carries_the_case_to_the_server_and_every_finding_stays(self):
        # Both phones signed in before going on site: each holds the certificate of its
        # key, with which the other verifies its changes. Without signal, Zhang opens the
        # case and records a finding; Li receives the case from Zhang's phone as a case
        # file and records one of her own.
        zhang = self.open_store("zhang-relay.db", inspector("zhangwei", "张伟", "应急管理"))
        li = self.open_store("li-relay.db", inspector("lina", "李娜", "消防"))
        token = zhang.login(self.server.url, "zhangwei", PASSWORD, "张伟的手机")
        li_token = li.login(self.server.url, "lina", PASSWORD, "李娜的平板")
        case_id = self.open_case_with_enterprise(zhang)
        zhang.add_finding(case_id, anjian.NewFinding(
            description="配电箱未接地", level=anjian.Level.GENERAL, category="电气",
            place="二号车间", legal_basis=""))
        merged = li.merge_case(zhang.export_case(case_id))
        self.assertEqual((merged.case_id, merged.result.refused), (case_id, []))
        li.add_finding(case_id, anjian.NewFinding(
            description="消防通道堵塞", level=anjian.Level.GENERAL, category="消防",
            place="仓库", legal_basis=""))

        # Li reaches the network first and carries everything, each finding as its
        # author's, and Zhang's phone receives Li's.
        result = asyncio.run(li.sync(self.server.url, li_token, None))
        self.assertEqual((result.refused, result.waiting), ([], []))
        result = asyncio.run(zhang.sync(self.server.url, token, None))
        self.assertEqual((result.refused, result.waiting), ([], []))
        findings = zhang.case(case_id).findings
        self.assertEqual(sorted((f.description, f.recorded_by) for f in findings),
                         [("消防通道堵塞", "lina"), ("配电箱未接地", "zhangwei")])
        self.assertEqual(zhang.heads(case_id), li.heads(case_id))
        for store in (zhang, li):
            upload = store.upload_state(case_id)
            self.assertEqual(upload.acknowledged, upload.changes)

        # A phone that never signed in proves nothing about who wrote its changes: its
        # case file is read and judged, and nothing of it is kept.
        stranger = self.open_store("stranger-relay.db", inspector("zhaoliu", "赵六", "应急管理"))
        stranger_case = self.open_case_with_enterprise(stranger)
        merged = li.merge_case(stranger.export_case(stranger_case))
        self.assertEqual(merged.result.accepted, 0)
        self.assertNotEqual(merged.result.refused, [])
        with self.assertRaises(anjian.AnjianError.NotFound):
            li.case(stranger_case)

    def test_documents_issued_offline_reach_the_server(self):
        # Offline, a joint team of two: Zhang's phone draws up a 现场检查记录 and a
        # 责令限期整改指令书 from the case, seals them, both inspectors sign on it, the
        # enterprise signs one and refuses the other before a witness; both are issued.
        zhang = self.open_store("zhang-writs.db", inspector("zhangwei", "张伟", "应急管理"))
        zhang.register_enterprise(enterprise())
        case_id = zhang.open_case(anjian.NewCase(
            enterprise=CREDIT_CODE, case_type=anjian.CaseType.JOINT, opened_at=VISIT,
            team=[anjian.TeamMember(user_id="lina", name="李娜", department="消防",
                                    district=DISTRICT)]))
        finding_id = zhang.add_finding(case_id, anjian.NewFinding(
            description="液氯储罐区报警装置未投入使用", level=anjian.Level.MAJOR,
            category="设备设施", place="罐区", legal_basis="《危险化学品安全管理条例》第二十条"))
        zhang.order_rectification(case_id, finding_id, anjian.RectificationOrder(
            measures="恢复报警装置并联调联试", deadline="2026-12-15", responsible="王建国"))
        image = zhang.ingest_photo_file(PHOTO).sha256
        keys = [f.key for f in anjian.writ_fields(anjian.WritKind.RECTIFICATION_ORDER)]
        self.assertEqual(keys, ["enterprise", "hazards", "deadline", "requirement", "appeal"])

        def signed(kind):
            writ = zhang.create_writ(case_id, kind, None)
            number = zhang.seal_writ(case_id, writ)
            self.assertTrue(number.startswith("（临时）"), number)
            with self.assertRaises(anjian.AnjianError.Conflict):
                zhang.edit_writ(case_id, writ, "enterprise", "改写")
            for user, name, cert in [("zhangwei", "张伟", "31010000001"),
                                     ("lina", "李娜", "31010000002")]:
                zhang.sign_writ(case_id, writ, anjian.SignatureInput(
                    role=anjian.SignerRole.INSPECTOR, user=user, name=name,
                    certificate_no=cert, image=image))
            return writ

        record = signed(anjian.WritKind.INSPECTION_RECORD)
        with self.assertRaises(anjian.AnjianError.Conflict):
            zhang.issue_writ(case_id, record)  # the enterprise has not answered yet
        zhang.sign_writ(case_id, record, anjian.SignatureInput(
            role=anjian.SignerRole.ENTERPRISE, user="", name="王建国", certificate_no="",
            image=image))
        zhang.issue_writ(case_id, record)
        order = signed(anjian.WritKind.RECTIFICATION_ORDER)
        zhang.refuse_writ(case_id, order, "负责人拒绝签字", "园区安全员 赵某", None)
        zhang.issue_writ(case_id, order)
        writs = zhang.writs(case_id)
        self.assertEqual([w.state for w in writs], [anjian.WritState.ISSUED] * 2)
        font = os.environ.get("ANJIAN_CJK_FONT",
                              "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")
        pdf = zhang.render_writ(case_id, order, font, 2)
        self.assertEqual(pdf[:5], b"%PDF-")
        printed = zhang.print_writ(case_id, order, font, 2)
        self.assertEqual(printed.pdf[:5], b"%PDF-")
        self.assertEqual(zhang.writs(case_id)[1].pdf, printed.sha256)
        with self.assertRaises(anjian.AnjianError.Storage):
            zhang.render_writ(case_id, order, os.path.join(self.tmp.name, "no-such-font"), 0)
        self.assertIn("液氯储罐区报警装置未投入使用", writs[1].fields["hazards"])

        # Then Zhang syncs; the server holds both, as issued, with their signers.
        token = zhang.login(self.server.url, "zhangwei", PASSWORD, "张伟的手机")
        result = asyncio.run(zhang.sync(self.server.url, token, None))
        self.assertEqual((result.refused, result.waiting), ([], []))
        request = urllib.request.Request(
            f"{self.server.url}/api/v1/cases/{case_id}",
            headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            served = json.load(response)
        # Sealed offline with provisional numbers, which the server replaced on sync.
        self.assertEqual(
            [(w["kind"], w["state"], w["provisional_number"]) for w in served["writs"]],
            [(w.kind.name.lower(), "issued", w.number) for w in writs])
        for w in served["writs"]:
            self.assertRegex(w["number"], r"^（沪黄）应急(检记|责改)〔\d{4}〕\d{4}号$")
            self.assertFalse(w["provisional"])
        self.assertEqual([w.number for w in zhang.writs(case_id)],
                         [w["number"] for w in served["writs"]])
        self.assertIn("李娜（lina，执法证号 31010000002）", served["writs"][0]["signers"])
        self.assertEqual(served["writs"][1]["refusal"], "负责人拒绝签字（见证人：园区安全员 赵某）")
        # The sync brought blocks of numbers: the next document is numbered offline.
        left = {n.kind: n.left for n in zhang.numbers_left()}
        self.assertEqual(left[anjian.WritKind.RECTIFICATION_ORDER], 20)
        next_order = zhang.create_writ(case_id, anjian.WritKind.RECTIFICATION_ORDER, None)
        self.assertRegex(zhang.seal_writ(case_id, next_order),
                         r"^（沪黄）应急责改〔\d{4}〕\d{4}号$")
        left = {n.kind: n.left for n in zhang.numbers_left()}
        self.assertEqual(left[anjian.WritKind.RECTIFICATION_ORDER], 19)
        # The printed copy reached the server byte for byte.
        self.assertEqual(served["writs"][1]["pdf"], printed.sha256)
        request = urllib.request.Request(
            f"{self.server.url}/api/v1/blobs/{printed.sha256}",
            headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            self.assertEqual(response.headers["Content-Type"], "application/pdf")
            self.assertEqual(response.read(), printed.pdf)

    def test_phones_merge_on_site_in_a_peer_session_signing_with_a_platform_key(self):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        class SecureEnclave(anjian.DeviceSigner):
            """A P-256 key the app keeps in the platform's key store (here: in memory)."""
            def __init__(self, der=False):
                self.key = ec.generate_private_key(ec.SECP256R1())
                self.der = der
            def algorithm(self):
                return "p256"
            def public_key(self):
                return self.key.public_key().public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
            def sign(self, message):
                der = self.key.sign(message, ec.ECDSA(hashes.SHA256()))
                if self.der:
                    return der
                r, s = decode_dss_signature(der)
                return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        zhang = self.open_store("zhang-peer.db", inspector("zhangwei", "张伟", "应急管理"))
        li = self.open_store("li-peer.db", inspector("lina", "李娜", "消防"))
        zhang.set_signer(SecureEnclave())
        zhang_token = zhang.login(self.server.url, "zhangwei", PASSWORD, "张伟的手机")
        li_token = li.login(self.server.url, "lina", PASSWORD, "李娜的平板")

        # On site, no signal: the phones pass messages back and forth (over Bluetooth or
        # QR codes in an app) until neither has more to say.
        def meet(a, b, case_id):
            at_a, at_b = a.peer_session(case_id), b.peer_session(case_id)
            results = []
            for _ in range(20):
                to_b, to_a = at_a.message(), None
                if to_b is not None:
                    results.append(at_b.receive(to_b))
                to_a = at_b.message()
                if to_a is not None:
                    results.append(at_a.receive(to_a))
                if to_b is None and to_a is None:
                    return results
            self.fail("the peer session did not finish")

        case_id = self.open_case_with_enterprise(zhang)
        zhang.add_finding(case_id, anjian.NewFinding(
            description="配电箱未接地", level=anjian.Level.GENERAL, category="电气",
            place="二号车间", legal_basis=""))
        results = meet(zhang, li, case_id)
        self.assertEqual([(r.refused, r.waiting) for r in results if r.refused], [])
        self.assertGreater(sum(r.accepted for r in results), 0)
        li.add_finding(case_id, anjian.NewFinding(
            description="消防通道堵塞", level=anjian.Level.GENERAL, category="消防",
            place="仓库", legal_basis=""))
        meet(li, zhang, case_id)
        both = ["消防通道堵塞", "配电箱未接地"]
        self.assertEqual(sorted(f.description for f in zhang.case(case_id).findings), both)

        # Bytes that are not a peer message change nothing.
        with self.assertRaises(anjian.AnjianError.Validation):
            li.peer_session(case_id).receive(b"\xa1not a peer message")

        # Li reaches the network; the server takes everything, each as its author's.
        result = asyncio.run(li.sync(self.server.url, li_token, None))
        self.assertEqual((result.refused, result.waiting), ([], []))
        result = asyncio.run(zhang.sync(self.server.url, zhang_token, None))
        self.assertEqual((result.refused, result.waiting), ([], []))
        self.assertEqual(sorted((f.description, f.recorded_by)
                                for f in zhang.case(case_id).findings),
                         [("消防通道堵塞", "lina"), ("配电箱未接地", "zhangwei")])
        upload = zhang.upload_state(case_id)
        self.assertEqual(upload.acknowledged, upload.changes)

        # A key store that answers in DER is caught before anything is recorded.
        zhang.set_signer(SecureEnclave(der=True))
        with self.assertRaises(anjian.AnjianError.Validation) as raised:
            zhang.add_finding(case_id, anjian.NewFinding(description="安全出口堵塞"))
        self.assertEqual(raised.exception.field, "signature")
        self.assertEqual(len(zhang.case(case_id).findings), 2)

    def test_a_refused_step_takes_none_of_the_later_findings_with_it(self):
        # Zhang closes a hazard (销号) while Li, offline, re-inspects it again and then
        # records a new hazard: the server refuses the step, and the new hazard, which
        # Li's phone had built on it, is entered again and reaches the server.
        zhang = self.open_store("zhang-refused.db", inspector("zhangwei", "张伟", "应急管理"))
        li = self.open_store("li-refused.db", inspector("lina", "李娜", "消防"))
        case_id = self.open_case_with_enterprise(zhang)
        finding_id = zhang.add_finding(case_id, anjian.NewFinding(description="安全出口堵塞"))
        zhang.order_rectification(case_id, finding_id, anjian.RectificationOrder(
            measures="清理通道", deadline="2026-11-27", responsible="王建国"))
        token = zhang.login(self.server.url, "zhangwei", PASSWORD, "张伟的手机")
        li_token = li.login(self.server.url, "lina", PASSWORD, "李娜的平板")
        asyncio.run(zhang.sync(self.server.url, token, None))
        asyncio.run(li.sync(self.server.url, li_token, None))
        passed = anjian.HazardStep.REINSPECT(
            result=anjian.ReinspectionResult.PASS, note="通道已清理", deadline=None,
            escalation="")
        zhang.follow_up(case_id, finding_id, passed)
        zhang.follow_up(case_id, finding_id, anjian.HazardStep.CLOSE(note=""))
        asyncio.run(zhang.sync(self.server.url, token, None))

        li.follow_up(case_id, finding_id, passed)
        later = li.add_finding(case_id, anjian.NewFinding(description="灭火器过期"))
        result = asyncio.run(li.sync(self.server.url, li_token, None))
        self.assertEqual([r.case_id for r in result.refused], [case_id])
        result = asyncio.run(li.sync(self.server.url, li_token, None))
        self.assertEqual((result.refused, result.waiting), ([], []))
        asyncio.run(zhang.sync(self.server.url, token, None))
        self.assertIn(later, [f.id for f in zhang.case(case_id).findings])
        self.assertEqual(li.heads(case_id), zhang.heads(case_id))

        # Each dropped change reads as what it was; the step, refused itself, is not
        # entered again, and entering it by hand is refused by the loop as well.
        refusals = {r.change.action: r for r in li.refusals()}
        self.assertEqual(sorted(refusals), ["add_finding", "follow_up:reinspect"])
        self.assertIsNone(refusals["follow_up:reinspect"].reentered_as)
        self.assertEqual(refusals["follow_up:reinspect"].change.author, "lina")
        self.assertIsNotNone(refusals["add_finding"].reentered_as)
        # The new change names the one it enters again, on every phone and the server.
        for store in (li, zhang):
            entry = next(e for e in store.history(case_id)
                         if e.hash == refusals["add_finding"].reentered_as)
            self.assertEqual(entry.entered_again_for, refusals["add_finding"].change_hash)
        with self.assertRaises(anjian.AnjianError.Conflict) as raised:
            li.enter_again(case_id, refusals["follow_up:reinspect"].change_hash)
        self.assertIn("已销号", raised.exception.reason)

    def test_bad_credit_code_is_a_validation_error_naming_the_field(self):
        store = self.open_store("validation.db", inspector("zhangwei", "张伟", "应急管理"))
        with self.assertRaises(anjian.AnjianError.Validation) as raised:
            store.register_enterprise(enterprise("91310101MA00000010"))
        self.assertEqual(raised.exception.field, "credit_code")
        self.assertIn("check character", raised.exception.reason)
        self.assertEqual(store.enterprises(), [], "nothing was stored")

    def test_a_fixed_device_time_stamps_the_records(self):
        store = self.open_store("clock.db", inspector("zhangwei", "张伟", "应急管理"))
        case_id = self.open_case_with_enterprise(store)
        store.set_device_time("2026-11-20T10:15:00+08:00")
        finding_id = store.add_finding(case_id, anjian.NewFinding(description="安全出口堵塞"))
        finding = next(f for f in store.case(case_id).findings if f.id == finding_id)
        self.assertEqual(finding.recorded_at, "2026-11-20T10:15:00+08:00")
        with self.assertRaises(anjian.AnjianError.Validation):
            store.set_device_time("上周二")
        store.set_device_time(None)
        later = store.add_finding(case_id, anjian.NewFinding(description="灭火器过期"))
        recorded = next(f for f in store.case(case_id).findings if f.id == later).recorded_at
        self.assertGreater(recorded[:10], "2026-11-20")

    def test_deadline_before_the_visit_is_refused(self):
        store = self.open_store("deadline.db", inspector("zhangwei", "张伟", "应急管理"))
        case_id = self.open_case_with_enterprise(store)
        finding_id = store.add_finding(case_id, anjian.NewFinding(description="安全出口堵塞"))
        with self.assertRaises(anjian.AnjianError.Validation) as raised:
            store.order_rectification(case_id, finding_id, anjian.RectificationOrder(
                measures="清理通道", deadline="2026-11-01", responsible="王建国"))
        self.assertEqual(raised.exception.field, "deadline")
        with self.assertRaises(anjian.AnjianError.NotFound):
            store.case("00000000-0000-4000-8000-000000000000")

    def test_a_panic_inside_the_library_is_an_internal_error_not_a_crash(self):
        path = os.path.join(self.tmp.name, "panic.db")
        identity = inspector("zhangwei", "张伟", "应急管理")
        store = anjian.InspectorStore.open(path, identity)
        store.register_enterprise(enterprise())
        with self.assertRaises(anjian.AnjianError.Internal) as raised:
            store.debug_panic("模拟的内部错误")
        self.assertIn("模拟的内部错误", raised.exception.reason)
        with self.assertRaises(anjian.AnjianError.Internal):
            store.enterprises()
        store.close_store()
        reopened = self.open_store("panic.db", identity)
        self.assertEqual(len(reopened.enterprises()), 1, "the file is intact")

    def test_calls_from_many_threads_at_once_all_land(self):
        store = self.open_store("threads.db", inspector("zhangwei", "张伟", "应急管理"))
        case_id = self.open_case_with_enterprise(store)
        errors = []

        def record(worker):
            try:
                for n in range(10):
                    store.add_finding(case_id, anjian.NewFinding(description=f"线程{worker}的隐患{n}"))
                    store.cases(anjian.CaseQuery())
            except Exception as e:  # collected and asserted below
                errors.append(e)

        threads = [threading.Thread(target=record, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(store.case(case_id).findings), 80)
        self.assertEqual(store.cases(anjian.CaseQuery())[0].findings, 80)

    def test_wrong_password_is_an_auth_error(self):
        store = self.open_store("auth.db", inspector("zhangwei", "张伟", "应急管理"))
        with self.assertRaises(anjian.AnjianError.Auth):
            store.login(self.server.url, "zhangwei", "不是这个密码", "手机")

    def test_a_phone_trusts_one_server_key_until_told_to_forget_it(self):
        store = self.open_store("pinned.db", inspector("zhangwei", "张伟", "应急管理"))
        store.login(self.server.url, "zhangwei", PASSWORD, "张伟的手机")
        # Another server (its own secret, so its own key) at the address the phone was
        # given: a wrong address, or something between the phone and the server.
        other = SyncServer(os.path.join(self.tmp.name, "other-server"),
                           [("zhangwei", "张伟", "应急管理")])
        self.addCleanup(other.stop)
        with self.assertRaises(anjian.AnjianError.Auth):
            store.login(other.url, "zhangwei", PASSWORD, "张伟的手机")
        store.login(self.server.url, "zhangwei", PASSWORD, "张伟的手机")
        # The administrator confirms the key changed on purpose.
        store.forget_server_keys()
        self.assertTrue(store.login(other.url, "zhangwei", PASSWORD, "张伟的手机"))

    def test_cancelling_a_sync_that_hangs_reports_cancelled(self):
        # A server that accepts the connection and never answers: the sync waits (for
        # the network timeout, 30 s by default) unless the inspector cancels it first.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        self.addCleanup(silent.close)
        url = "http://127.0.0.1:%d" % silent.getsockname()[1]
        store = self.open_store("cancel.db", inspector("zhangwei", "张伟", "应急管理"))
        listener = Listener()
        handle = store.sync_now(url, "token", listener)
        self.assertFalse(listener.done.wait(0.5), "still waiting for the server")
        handle.cancel()
        self.assertTrue(listener.done.wait(WAIT))
        self.assertIsInstance(listener.error, anjian.AnjianError.Cancelled)
        # Dropping the handle cancels as well.
        dropped = Listener()
        store.sync_now(url, "token", dropped)
        self.assertTrue(dropped.done.wait(WAIT))
        self.assertIsInstance(dropped.error, anjian.AnjianError.Cancelled)
        self.assertEqual(store.enterprises(), [], "the store is usable afterwards")

    def test_the_store_answers_while_a_sync_waits_for_the_network(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        self.addCleanup(silent.close)
        url = "http://127.0.0.1:%d" % silent.getsockname()[1]
        store = self.open_store("busy.db", inspector("zhangwei", "张伟", "应急管理"))
        listener = Listener()
        handle = store.sync_now(url, "token", listener)
        # Let the sync reach its network wait (a server that never answers), then keep
        # working as an inspector does: the calls must not wait for the sync.
        time.sleep(0.3)
        store.register_enterprise(enterprise())
        self.assertEqual(len(store.enterprises()), 1)
        self.assertFalse(handle.is_finished(), "the sync is still waiting for the server")
        handle.cancel()
        self.assertTrue(listener.done.wait(WAIT))
        self.assertIsInstance(listener.error, anjian.AnjianError.Cancelled)

    def test_a_server_that_stops_answering_fails_the_sync_after_the_timeout(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        self.addCleanup(silent.close)
        url = "http://127.0.0.1:%d" % silent.getsockname()[1]
        store = self.open_store("timeout.db", inspector("zhangwei", "张伟", "应急管理"))
        store.set_network_timeout_secs(1)
        with self.assertRaises(anjian.AnjianError.Network):
            asyncio.run(asyncio.wait_for(store.sync(url, "token", None), WAIT))

    def test_unreachable_server_is_a_network_error(self):
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % closed.getsockname()[1]
        closed.close()
        store = self.open_store("network.db", inspector("zhangwei", "张伟", "应急管理"))
        with self.assertRaises(anjian.AnjianError.Network):
            asyncio.run(store.sync(url, "token", None))

    def test_labels_are_chinese_and_codes_stable(self):
        self.assertEqual(anjian.Level.MAJOR.label(), "重大隐患")
        self.assertEqual(anjian.Level.MAJOR.code(), "major")
        self.assertEqual(anjian.ViolationKind.ILLEGAL_COMMAND.label(), "违章指挥")
        self.assertIn("anjian-ffi", anjian.library_version())


if __name__ == "__main__":
    unittest.main(verbosity=2)
