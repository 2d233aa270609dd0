"""Evidence packages from a real server, checked by the independent verifier
(`verify_evidence.py`, which uses no Anjian code): a package from a case that real devices
recorded, signed and synced, and a supervisor approved (a change the server writes and
signs with its own key), verifies clean, and a single byte altered in any part of it is
found.

Run by `ffi/scripts/test-bindings` with the environment `test_anjian.py` describes: the
generated bindings are the devices, the server runs as a child process, and the package
comes from its own command line and from the case page's download.
"""

import asyncio
import base64
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# test_anjian puts the generated module's folder on the path.
from test_anjian import (  # noqa: E402
    CREDIT_CODE, DISTRICT, PASSWORD, PHOTO, SERVER_BIN, VISIT, SyncServer, enterprise,
    inspector)
import anjian  # noqa: E402
import verify_evidence  # noqa: E402

SUPERVISOR = "chenjianguo"


def b64_flip(text, at=None):
    """`text` (base64) with one byte of what it encodes altered (the middle one by
    default)."""
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2 if at is None else at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def hex_flip(text):
    """`text` (hex) with its first byte altered."""
    raw = bytearray(bytes.fromhex(text))
    raw[0] ^= 0x01
    return raw.hex()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A supervisor's browser: signs in through the login form and keeps the session."""

    def __init__(self, url, username):
        self.url = url
        self.opener = urllib.request.build_opener(NoRedirect)
        with self.opener.open(f"{url}/login") as page:
            login_cookie = self.cookie(page, "anjian_login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.read().decode()).group(1)
        form = urllib.parse.urlencode({"username": username, "password": PASSWORD,
                                       "csrf": csrf, "next": "/cases"}).encode()
        request = urllib.request.Request(
            f"{url}/login", data=form, headers={"Cookie": f"anjian_login={login_cookie}"})
        try:
            self.opener.open(request)
            raise AssertionError("signing in redirects")
        except urllib.error.HTTPError as redirect:
            assert redirect.code == 303, redirect.code
            self.session = "__Host-anjian_session=" + self.cookie(redirect, "__Host-anjian_session")

    @staticmethod
    def cookie(response, name):
        for header in response.headers.get_all("Set-Cookie") or []:
            key, _, rest = header.partition("=")
            if key == name:
                return rest.split(";", 1)[0]
        raise AssertionError(f"no cookie {name}")

    def get(self, path):
        request = urllib.request.Request(f"{self.url}{path}", headers={"Cookie": self.session})
        with self.opener.open(request) as response:
            return response.headers, response.read()


def api(url, path, body, token=None):
    """POSTs `body` as JSON to the server's API and returns the JSON answer."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(),
                                     headers=headers)
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())


class EvidenceTest(unittest.TestCase):
    """One case recorded on site by two inspectors' phones and carried to the server by
    one of them, with a photo, handed in and approved by a supervisor; its evidence
    package, exported once."""

    @classmethod
    def setUpClass(cls):
        anjian.init_library("warn")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.tmp.name, "server")
        cls.server = SyncServer(cls.data, [("zhangwei", "张伟", "应急管理"), ("lina", "李娜", "消防")])
        subprocess.run(
            [SERVER_BIN, "--data", cls.data, "user", "add", "--username", SUPERVISOR,
             "--name", "陈建国", "--role", "supervisor", "--district", DISTRICT,
             "--password", PASSWORD], check=True, stdout=subprocess.DEVNULL)
        cls.case_id, cls.photo = cls.record_and_sync()
        cls.package_path = os.path.join(cls.tmp.name, "evidence.json")
        subprocess.run(
            [SERVER_BIN, "--data", cls.data, "evidence", "export", cls.case_id, "--photos",
             "--out", cls.package_path], check=True, stderr=subprocess.DEVNULL)
        with open(cls.package_path, "rb") as f:
            cls.package_bytes = f.read()
        cls.package = json.loads(cls.package_bytes)
        key = subprocess.run([SERVER_BIN, "--data", cls.data, "evidence", "key"], check=True,
                             capture_output=True, text=True).stdout.split()
        cls.server_key = bytes.fromhex(key[1])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    @classmethod
    def record_and_sync(cls):
        zhang = anjian.InspectorStore.open(os.path.join(cls.tmp.name, "zhang.db"),
                                           inspector("zhangwei", "张伟", "应急管理"))
        li = anjian.InspectorStore.open(os.path.join(cls.tmp.name, "li.db"),
                                        inspector("lina", "李娜", "消防"))
        try:
            zhang.register_enterprise(enterprise())
            case_id = zhang.open_case(anjian.NewCase(
                enterprise=CREDIT_CODE, case_type=anjian.CaseType.JOINT, opened_at=VISIT))
            finding = zhang.add_finding(case_id, anjian.NewFinding(
                description="液氯储罐区可燃有毒气体检测报警装置未投入使用",
                level=anjian.Level.MAJOR, category="报警与切断", place="液氯罐区",
                legal_basis="安监总管三〔2017〕121号 第十二条"))
            photo = zhang.ingest_photo_file(PHOTO)
            zhang.attach_photo(case_id, anjian.PhotoTarget.FINDING(finding_id=finding),
                               photo.sha256, "报警控制器断电")
            # Both phones signed in before going on site (each holds its certificate). On
            # site: Li receives the case from Zhang's phone and records her own finding;
            # her phone carries both to the server.
            zhang_token = zhang.login(cls.server.url, "zhangwei", PASSWORD, "张伟的手机")
            li_token = li.login(cls.server.url, "lina", PASSWORD, "李娜的平板")
            merged = li.merge_case(zhang.export_case(case_id))
            assert merged.result.refused == [], merged
            li.add_finding(case_id, anjian.NewFinding(
                description="消防通道堵塞", level=anjian.Level.GENERAL, category="消防",
                place="仓库", legal_basis=""))
            result = asyncio.run(li.sync(cls.server.url, li_token, None))
            assert (result.refused, result.waiting) == ([], []), result
            # Zhang hands the case in; his phone then uploads it with the photo it holds.
            zhang.review(case_id, anjian.ReviewAction.SUBMIT, "请审核")
            result = asyncio.run(zhang.sync(cls.server.url, zhang_token, None))
            assert result.blobs_uploaded == 2, result
            # The supervisor approves it through the API: the server writes the decision
            # under his server-side device and signs it with the server's key.
            token = api(cls.server.url, "/api/v1/login", {
                "username": SUPERVISOR, "password": PASSWORD, "device_name": "办公电脑",
                "actor_id": os.urandom(16).hex()})["token"]
            answer = api(cls.server.url, f"/api/v1/cases/{case_id}/review",
                         {"action": "approve", "text": ""}, token)
            assert answer == {"state": "approved"}, answer
            return case_id, photo.sha256
        finally:
            zhang.close_store()
            li.close_store()

    def verify(self, package):
        return verify_evidence.verify_package(package, self.server_key)

    def server_signed(self, package):
        """The indices of the changes signed with the server's key."""
        server_id = verify_evidence.key_id("ed25519", self.server_key).hex()
        return [i for i, c in enumerate(package["changes"])
                if c["signature"] and c["signature"]["keyId"] == server_id]

    def test_a_package_from_a_real_server_verifies_clean(self):
        report = self.verify(self.package)
        self.assertEqual(report.failures, [])
        changes = len(self.package["changes"])
        self.assertGreaterEqual(changes, 6)
        self.assertEqual((report.signed, report.receipts), (changes, changes),
                         "every change is signed and has a signed receipt")
        self.assertEqual(report.certificates, 3,
                         "one certificate per phone, and the server's for the supervisor")
        # The approval: written by the supervisor's server-side device, signed by the server.
        decisions = self.server_signed(self.package)
        self.assertGreaterEqual(len(decisions), 1)
        self.assertEqual(report.server_signed, len(decisions))
        server_side = [d for d in self.package["devices"]
                       if d["name"] == verify_evidence.SERVER_DEVICE_NAME]
        self.assertEqual([(d["account"], d["keys"]) for d in server_side], [(SUPERVISOR, [])])
        for i in decisions:
            self.assertEqual(self.package["changes"][i]["receipt"]["author"], SUPERVISOR)
        self.assertEqual(report.photos_checked, 2, "the original and its thumbnail")
        self.assertIn(self.photo, {p["sha256"] for p in self.package["photos"]})
        # Zhang's changes reached the server on Li's phone: the receipts say so.
        receipts = [c["receipt"] for c in self.package["changes"]]
        self.assertIn({"author": "zhangwei", "relayedBy": "lina"},
                      [{k: r[k] for k in ("author", "relayedBy")} for r in receipts])
        self.assertEqual(verify_evidence.main([self.package_path, "--server-key",
                                               self.server_key.hex()]), 0)

    def test_the_case_page_downloads_the_same_bytes_and_shows_every_signature_verified(self):
        browser = Browser(self.server.url, SUPERVISOR)
        headers, downloaded = browser.get(f"/cases/{self.case_id}/evidence?photos=true")
        self.assertEqual(downloaded, self.package_bytes)
        self.assertIn("attachment", headers["Content-Disposition"])
        _, without_photos = browser.get(f"/cases/{self.case_id}/evidence")
        light = json.loads(without_photos)
        self.assertTrue(all("bytes" not in p for p in light["photos"]))
        self.assertEqual(self.verify(light).failures, [])
        _, page = browser.get(f"/cases/{self.case_id}")
        page = page.decode()
        self.assertIn("签名核验", page)
        self.assertIn('data-verified="true"', page)
        self.assertEqual(page.count("✓ 核验通过"), 2 * len(self.package["changes"]))

    def test_a_wrong_server_key_is_found(self):
        other = bytes(32)
        self.assertIn("server-key", verify_evidence.verify_package(self.package, other).codes)

    def test_one_altered_byte_in_any_part_is_found(self):
        decision = self.server_signed(self.package)[0]
        first_signed = next(i for i, c in enumerate(self.package["changes"])
                            if c["signature"] and i != decision)
        phone = next(i for i, d in enumerate(self.package["devices"]) if d["keys"])
        server_side = next(i for i, d in enumerate(self.package["devices"])
                           if d["name"] == verify_evidence.SERVER_DEVICE_NAME)
        original = next(i for i, p in enumerate(self.package["photos"])
                        if p["sha256"] == self.photo)

        def change_byte(p):
            c = p["changes"][0]
            c["bytes"] = b64_flip(c["bytes"])

        def signature(p):
            s = p["changes"][first_signed]["signature"]
            s["signature"] = hex_flip(s["signature"])

        def server_signature(p):
            s = p["changes"][decision]["signature"]
            s["signature"] = hex_flip(s["signature"])

        def server_key_on_a_phones_change(p):
            # The decision's signature moved onto a phone's change: the server's key signs
            # only what a supervisor's server-side device wrote.
            p["changes"][first_signed]["signature"] = p["changes"][decision]["signature"]

        def server_side_device_renamed(p):
            p["devices"][server_side]["name"] = "陈建国的手机"

        def decision_author(p):
            p["changes"][decision]["receipt"]["author"] = "zhangwei"

        def key(p):
            k = p["devices"][phone]["keys"][0]
            k["publicKey"] = hex_flip(k["publicKey"])

        def receipt_time(p):
            r = p["changes"][-1]["receipt"]
            r["receivedAt"] = "3" + r["receivedAt"][1:]  # received in 3026

        def receipt_signature(p):
            r = p["changes"][0]["receipt"]
            r["signature"] = hex_flip(r["signature"])

        def certificate(p):
            d = p["devices"][-1]
            d["certificates"][0] = b64_flip(d["certificates"][0], at=-1)

        def photo(p):
            ph = p["photos"][original]
            ph["bytes"] = b64_flip(ph["bytes"])

        def account_name(p):
            p["accounts"][0]["name"] += "某"

        def dropped_change(p):
            del p["changes"][-1]

        cases = [
            (change_byte, "change-checksum"),
            (signature, "signature"),
            (server_signature, "signature"),
            (server_key_on_a_phones_change, "signature"),
            (server_side_device_renamed, "signature"),
            (decision_author, "signature"),
            (key, "signature"),
            (receipt_time, "receipt"),
            (receipt_signature, "receipt"),
            (certificate, "certificate"),
            (photo, "photo"),
            (account_name, "certificate"),
            (dropped_change, "heads"),
        ]
        for alter, code in cases:
            with self.subTest(alter.__name__):
                package = copy.deepcopy(self.package)
                alter(package)
                self.assertNotEqual(package, self.package, "the part was altered")
                report = self.verify(package)
                self.assertIn(code, report.codes, report.failures)
                # The server's signature of the whole package catches every one as well.
                self.assertIn("package-signature", report.codes)

        # And the package's own signature, altered, is found.
        package = copy.deepcopy(self.package)
        package["signature"] = hex_flip(package["signature"])
        self.assertEqual(self.verify(package).codes, {"package-signature"})


if __name__ == "__main__":
    unittest.main()
