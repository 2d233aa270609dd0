package cn.anjian.ffi

import java.io.File
import java.math.BigInteger
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.net.ServerSocket
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.CountDownLatch
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertInstanceOf
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows

private const val PASSWORD = "巡查安全2026!"
private const val DISTRICT = "310101"
private const val VISIT = "2026-11-20T09:30:00+08:00"
// 统一社会信用代码 with a correct check character (GB 32100-2015).
private const val CREDIT_CODE = "91310101MA0000001M"
private const val WAIT_SECONDS = 60L

/**
 * The real sync server as a child process on 127.0.0.1:0 with its own data folder; users
 * are added with the server's own CLI before it starts.
 */
class SyncServer(data: Path, users: List<Triple<String, String, String>>) : AutoCloseable {
    private val bin = System.getProperty("anjian.serverBin")
    private val process: Process
    val url: String

    init {
        for ((i, user) in users.withIndex()) {
            val (username, name, department) = user
            val add = ProcessBuilder(
                bin, "--data", data.toString(), "user", "add", "--username", username,
                "--name", name, "--role", "inspector", "--district", DISTRICT,
                "--department", department, "--password", PASSWORD,
            ).redirectOutput(ProcessBuilder.Redirect.DISCARD).start()
            check(add.waitFor() == 0) { "user add $username failed" }
            // Each inspector's 执法证: 31010000001, 31010000002, …
            val certify = ProcessBuilder(
                bin, "--data", data.toString(), "user", "certify", username,
                "--number", "3101000000${i + 1}", "--valid-until", "2030-12-31",
            ).redirectOutput(ProcessBuilder.Redirect.DISCARD).start()
            check(certify.waitFor() == 0) { "user certify $username failed" }
        }
        val builder = ProcessBuilder(bin, "--data", data.toString(), "serve", "--listen", "127.0.0.1:0")
            .redirectError(ProcessBuilder.Redirect.DISCARD)
        builder.environment()["RUST_LOG"] = "warn"
        process = builder.start()
        val lines = process.inputStream.bufferedReader()
        // "安检 Anjian sync server on http://127.0.0.1:PORT (data in …)"
        val banner = generateSequence { lines.readLine() }.firstOrNull { " on http://" in it }
            ?: error("the server exited before it listened")
        url = banner.substringAfter(" on ").substringBefore(" ")
        // Keep reading what the server prints, so that a full pipe never blocks it.
        thread(isDaemon = true) { lines.readText() }
    }

    override fun close() {
        process.destroy()
        process.waitFor(10, TimeUnit.SECONDS)
    }
}

/** What an app's sync screen does: remember progress, wake the waiter at the end. */
class ScreenListener : SyncListener {
    val progress = CopyOnWriteArrayList<SyncProgress>()
    @Volatile var result: SyncResult? = null
    @Volatile var error: AnjianException? = null
    val done = CountDownLatch(1)

    override fun onProgress(progress: SyncProgress) {
        this.progress.add(progress)
    }

    override fun onFinished(result: SyncResult) {
        this.result = result
        done.countDown()
    }

    override fun onFailed(error: AnjianException) {
        this.error = error
        done.countDown()
    }

    fun await(): Boolean = done.await(WAIT_SECONDS, TimeUnit.SECONDS)
}

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class InspectorAppTest {
    private val dir: Path = Files.createTempDirectory("anjian-kotlin")
    private lateinit var server: SyncServer
    private val photo = File(System.getProperty("anjian.fixtures"), "tank-farm.jpg")

    private val zhangwei = Identity(userId = "zhangwei", name = "张伟", department = "应急管理", district = DISTRICT)
    private val lina = Identity(userId = "lina", name = "李娜", department = "消防", district = DISTRICT)

    @BeforeAll
    fun startServer() {
        initLibrary("warn")
        server = SyncServer(dir.resolve("server"), listOf(Triple("zhangwei", "张伟", "应急管理"), Triple("lina", "李娜", "消防")))
    }

    @AfterAll
    fun stopServer() {
        server.close()
        dir.toFile().deleteRecursively()
    }

    private fun openStore(name: String, identity: Identity) = InspectorStore.open(dir.resolve(name).toString(), identity)

    private fun enterprise(creditCode: String = CREDIT_CODE) = Enterprise(
        creditCode = creditCode,
        name = "上海滨江化工有限公司",
        district = DISTRICT,
        industry = Industry.HAZARDOUS_CHEMICALS,
        riskGrade = RiskGrade.SIGNIFICANT,
    )

    private fun openCase(store: InspectorStore): String {
        store.registerEnterprise(enterprise())
        return store.openCase(NewCase(enterprise = CREDIT_CODE, caseType = CaseType.ROUTINE, openedAt = VISIT))
    }

    @Test
    fun `an offline case syncs and the other inspector reads the finding`() {
        openStore("zhang-flow.db", zhangwei).use { zhang ->
            openStore("li-flow.db", lina).use { li ->
                // Offline: a case with a major finding, a photo and a checklist answer.
                val caseId = openCase(zhang)
                val findingId = zhang.addFinding(
                    caseId,
                    NewFinding(
                        description = "液氯储罐区可燃有毒气体检测报警装置未投入使用",
                        level = Level.MAJOR,
                        category = "报警与切断",
                        place = "液氯罐区",
                    ),
                )
                val info = zhang.ingestPhoto(photo.readBytes())
                assertEquals("image/jpeg", info.mime)
                assertEquals(800u, info.width)
                zhang.attachPhoto(caseId, PhotoTarget.Finding(findingId), info.sha256, "报警控制器断电")
                val template = zhang.templates().first { it.kind == TemplateKind.THREE_VIOLATIONS }
                val item = template.items.first()
                val checklistId = zhang.attachChecklist(caseId, template.id)
                val fromAnswer = zhang.answerItem(
                    caseId,
                    checklistId,
                    item.id,
                    AnswerInput(result = AnswerResult.NON_COMPLIANT, note = "现场无作业票", person = "赵某"),
                )
                assertNotNull(fromAnswer, "a 不符合 answer creates a finding")
                val offline = zhang.case(caseId)
                assertEquals(2, offline.findings.size)
                val violation = offline.findings.first { it.id == fromAnswer }.violation
                assertEquals(item.posts.first(), violation?.post, "a three-violations item records the post")

                // Sign in and sync with a listener and a handle, as a sync screen does.
                val token = zhang.login(server.url, "zhangwei", PASSWORD, "张伟的手机")
                val listener = ScreenListener()
                zhang.syncNow(server.url, token, listener).use { handle ->
                    assertTrue(listener.await(), "sync ended")
                    assertTrue(handle.isFinished())
                }
                assertNull(listener.error)
                val pushed = listener.result!!
                assertTrue(caseId in pushed.cases)
                assertEquals(2uL, pushed.blobsUploaded)
                assertTrue(listener.progress.isNotEmpty())
                assertEquals(pushed, zhang.lastSyncResult())
                assertTrue(zhang.pendingUploads().isEmpty())

                // The other inspector syncs from a coroutine and reads the first one's work.
                val liToken = li.login(server.url, "lina", PASSWORD, "李娜的平板")
                val pulled = runBlocking { withTimeout(WAIT_SECONDS * 1000) { li.sync(server.url, liToken, null) } }
                assertTrue(caseId in pulled.cases)
                val theirs = li.case(caseId).findings.first { it.id == findingId }
                assertEquals("液氯储罐区可燃有毒气体检测报警装置未投入使用", theirs.description)
                assertEquals("zhangwei", theirs.recordedBy)
                assertEquals(Level.MAJOR, theirs.level)
                assertEquals("报警控制器断电", theirs.photos.single().caption)
                val thumbnail = li.photoBytes(theirs.photos.single().thumbnail)
                assertEquals(0xFF.toByte(), thumbnail[0])
                assertArrayEquals(photo.readBytes(), li.fetchOriginal(server.url, liToken, info.sha256))
                assertEquals(zhang.heads(caseId), li.heads(caseId))
                assertTrue(li.history(caseId).any { it.action == "add_finding" && it.author == "zhangwei" })
            }
        }
    }

    @Test
    fun `documents issued offline reach the server and the other inspector`() {
        openStore("zhang-writs.db", zhangwei).use { zhang ->
            openStore("li-writs.db", lina).use { li ->
                // Offline: a joint case; Zhang's phone issues a 现场检查记录 and a
                // 责令限期整改指令书, both inspectors sign, the enterprise refuses before a witness.
                zhang.registerEnterprise(enterprise())
                val caseId = zhang.openCase(
                    NewCase(
                        enterprise = CREDIT_CODE,
                        caseType = CaseType.JOINT,
                        openedAt = VISIT,
                        team = listOf(TeamMember(userId = "lina", name = "李娜", department = "消防", district = DISTRICT)),
                    ),
                )
                val findingId = zhang.addFinding(caseId, NewFinding(description = "安全出口堵塞"))
                zhang.orderRectification(caseId, findingId, RectificationOrder("清理通道", "2026-11-27", "王建国"))
                val image = zhang.ingestPhoto(photo.readBytes()).sha256
                val issued = listOf(WritKind.INSPECTION_RECORD, WritKind.RECTIFICATION_ORDER).map { kind ->
                    val writ = zhang.createWrit(caseId, kind, null)
                    val number = zhang.sealWrit(caseId, writ)
                    assertTrue(number.startsWith("（临时）"), number)
                    assertThrows<AnjianException.Conflict> { zhang.issueWrit(caseId, writ) }
                    for ((user, name, cert) in listOf(
                        Triple("zhangwei", "张伟", "31010000001"),
                        Triple("lina", "李娜", "31010000002"),
                    )) {
                        zhang.signWrit(caseId, writ, SignatureInput(SignerRole.INSPECTOR, user, name, cert, image))
                    }
                    zhang.refuseWrit(caseId, writ, "代班长拒绝签字", "园区安全员 赵某", null)
                    zhang.issueWrit(caseId, writ)
                    writ
                }
                assertTrue("安全出口堵塞" in zhang.writs(caseId).last().fields.getValue("hazards"))

                val token = zhang.login(server.url, "zhangwei", PASSWORD, "张伟的手机")
                runBlocking { withTimeout(WAIT_SECONDS * 1000) { zhang.sync(server.url, token, null) } }
                val liToken = li.login(server.url, "lina", PASSWORD, "李娜的平板")
                runBlocking { withTimeout(WAIT_SECONDS * 1000) { li.sync(server.url, liToken, null) } }
                val received = li.writs(caseId)
                assertEquals(issued, received.map { it.id })
                assertEquals(listOf(WritState.ISSUED, WritState.ISSUED), received.map { it.state })
                assertEquals(zhang.writs(caseId).map { it.number }, received.map { it.number })
                assertEquals("代班长拒绝签字", received.first().refusal?.reason)
            }
        }
    }

    /** A P-256 key as the Android Keystore keeps it: the app never sees its secret. */
    class KeystoreKey : DeviceSigner {
        private val pair = KeyPairGenerator.getInstance("EC").apply {
            initialize(ECGenParameterSpec("secp256r1"))
        }.generateKeyPair()

        override fun algorithm() = "p256"

        override fun publicKey(): ByteArray {
            val point = (pair.public as ECPublicKey).w
            return byteArrayOf(4) + fixed(point.affineX) + fixed(point.affineY)
        }

        // r and s, 32 bytes each: the JDK's P1363 format, not DER.
        override fun sign(message: ByteArray): ByteArray? = Signature.getInstance("SHA256withECDSAinP1363Format").run {
            initSign(pair.private)
            update(message)
            sign()
        }

        private fun fixed(n: BigInteger): ByteArray = n.toByteArray().takeLast(32).toByteArray().let {
            ByteArray(32 - it.size) + it
        }
    }

    @Test
    fun `two phones merge on site in a peer session and the server takes it all`() {
        openStore("zhang-peer.db", zhangwei).use { zhang ->
            openStore("li-peer.db", lina).use { li ->
                zhang.setSigner(KeystoreKey())
                val zhangToken = zhang.login(server.url, "zhangwei", PASSWORD, "张伟的手机")
                val liToken = li.login(server.url, "lina", PASSWORD, "李娜的平板")
                val caseId = openCase(zhang)
                zhang.addFinding(caseId, NewFinding(description = "配电箱未接地", level = Level.GENERAL))

                // No signal: the phones pass messages (Bluetooth, QR codes) until both are done.
                val atZhang = zhang.peerSession(caseId)
                val atLi = li.peerSession(caseId)
                var accepted = 0uL
                for (round in 1..20) {
                    val toLi = atZhang.message()
                    if (toLi != null) {
                        val result = atLi.receive(toLi)
                        assertEquals(emptyList<PeerRefusal>(), result.refused)
                        accepted += result.accepted
                    }
                    val toZhang = atLi.message()
                    if (toZhang != null) atZhang.receive(toZhang)
                    if (toLi == null && toZhang == null) break
                }
                assertTrue(accepted > 0uL)
                assertEquals(zhang.heads(caseId), li.heads(caseId))
                assertThrows<AnjianException.Validation> { li.peerSession(caseId).receive(byteArrayOf(1, 2, 3)) }

                // Li carries Zhang's work to the server; it is Zhang's there, with a receipt.
                val pushed = runBlocking { withTimeout(WAIT_SECONDS * 1000) { li.sync(server.url, liToken, null) } }
                assertEquals(emptyList<RefusedCase>(), pushed.refused)
                runBlocking { withTimeout(WAIT_SECONDS * 1000) { zhang.sync(server.url, zhangToken, null) } }
                assertEquals(zhang.history(caseId).size, zhang.receipts(caseId).size)
                assertEquals("zhangwei", li.case(caseId).findings.single().recordedBy)
            }
        }
    }

    @Test
    fun `a bad credit code is a validation error naming the field`() {
        openStore("validation.db", zhangwei).use { store ->
            val error = assertThrows<AnjianException.Validation> {
                store.registerEnterprise(enterprise("91310101MA00000010"))
            }
            assertEquals("credit_code", error.field)
            assertTrue("check character" in error.reason)
            assertTrue(store.enterprises().isEmpty(), "nothing was stored")
        }
    }

    @Test
    fun `a rectification cannot skip the loop`() {
        openStore("loop.db", zhangwei).use { store ->
            val caseId = openCase(store)
            val findingId = store.addFinding(caseId, NewFinding(description = "安全出口堵塞"))
            store.orderRectification(caseId, findingId, RectificationOrder("清理通道", "2026-11-27", "王建国"))
            assertThrows<AnjianException.Conflict> {
                store.followUp(caseId, findingId, HazardStep.Close(note = ""))
            }
            store.moveRectification(caseId, findingId, RectificationState.IN_PROGRESS)
            assertEquals(1, store.rectificationsDue("2026-11-27").size)
            // 延期 keeps the deadline it replaced; a 合格 re-inspection then allows 销号 by
            // the inspector who re-inspected this general hazard.
            store.followUp(caseId, findingId, HazardStep.Extend(deadline = "2026-12-10", reason = "企业书面申请"))
            store.followUp(
                caseId,
                findingId,
                HazardStep.Reinspect(ReinspectionResult.PASS, note = "通道已清理", deadline = null, escalation = ""),
            )
            store.followUp(caseId, findingId, HazardStep.Close(note = ""))
            val finding = store.case(caseId).findings.single()
            assertEquals(RectificationState.CLOSED, finding.rectification?.state)
            assertEquals(listOf("2026-11-27", null, null), finding.events.map { it.previousDeadline })
            assertEquals("2026-12-10", finding.rectification?.deadline)
        }
    }

    @Test
    fun `a panic inside the library is an exception, not a crash`() {
        openStore("panic.db", zhangwei).use { store ->
            val error = assertThrows<AnjianException.Internal> { store.debugPanic("模拟的内部错误") }
            assertTrue("模拟的内部错误" in error.reason)
            assertThrows<AnjianException.Internal> { store.enterprises() }
            store.closeStore()
        }
        openStore("panic.db", zhangwei).use { assertTrue(it.enterprises().isEmpty()) }
    }

    @Test
    fun `calls from many threads at once all land`() {
        openStore("threads.db", zhangwei).use { store ->
            val caseId = openCase(store)
            val pool = Executors.newFixedThreadPool(8)
            val work = (0 until 8).map { worker ->
                pool.submit {
                    repeat(10) { n ->
                        store.addFinding(caseId, NewFinding(description = "线程${worker}的隐患$n"))
                        store.cases(CaseQuery())
                    }
                }
            }
            work.forEach { it.get(WAIT_SECONDS, TimeUnit.SECONDS) }
            pool.shutdown()
            assertEquals(80, store.case(caseId).findings.size)
            assertEquals(80u, store.cases(CaseQuery()).single().findings)
        }
    }

    @Test
    fun `closing the handle of a hanging sync cancels it`() {
        // A server that accepts connections and never answers.
        ServerSocket(0).use { silent ->
            openStore("cancel.db", zhangwei).use { store ->
                val listener = ScreenListener()
                val handle = store.syncNow("http://127.0.0.1:${silent.localPort}", "token", listener)
                assertFalse(listener.done.await(500, TimeUnit.MILLISECONDS), "still waiting for the server")
                handle.close()
                assertTrue(listener.await())
                assertInstanceOf(AnjianException.Cancelled::class.java, listener.error)
            }
        }
    }

    @Test
    fun `wrong password is an auth error`() {
        openStore("auth.db", zhangwei).use { store ->
            assertThrows<AnjianException.Auth> { store.login(server.url, "zhangwei", "不是这个密码", "手机") }
        }
    }

    @Test
    fun `labels are Chinese and codes stable`() {
        assertEquals("重大隐患", Level.MAJOR.label())
        assertEquals("major", Level.MAJOR.code())
        assertEquals("违反劳动纪律", ViolationKind.LABOUR_DISCIPLINE.label())
    }
}
