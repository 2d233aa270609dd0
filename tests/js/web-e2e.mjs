// A supervisor at a desk, in headless Chromium (Debian's, driven by playwright-core):
// sign in, filter the case list, open a case with a conflict, resolve it, return the case
// with a comment, and look at the bulletin. Screenshots of the case page and the bulletin
// go to ARTEFACTS.
//
// Usage: node web-e2e.mjs SERVER USER PASSWORD CASE_ID COMMENT ARTEFACTS
// Prints one JSON line of what it saw; exits non-zero on any deviation.
import { chromium } from "playwright-core"
import { mkdirSync } from "node:fs"
import { join } from "node:path"

const [server, username, password, caseId, comment, artefacts] = process.argv.slice(2)
mkdirSync(artefacts, { recursive: true })

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking"],
})
const seen = {}
try {
  const context = await browser.newContext({ locale: "zh-CN", viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  page.setDefaultTimeout(15_000)

  // Unsigned, the list sends the browser to the login form, and back after signing in.
  await page.goto(`${server}/cases`)
  if (!page.url().includes("/login")) throw new Error(`not sent to login: ${page.url()}`)
  await page.getByLabel("用户名").fill(username)
  await page.getByLabel("密码").fill(password)
  await page.getByRole("button", { name: "登录" }).click()
  await page.waitForURL(/\/cases$/)
  const cookies = await context.cookies()
  const session = cookies.find((c) => c.name === "__Host-anjian_session")
  if (!session?.httpOnly || !session.secure || session.sameSite !== "Strict") {
    throw new Error(`session cookie not secure: ${JSON.stringify(session)}`)
  }
  seen.all = Number(await page.locator("#case-count").textContent())

  // Filter: only cases with conflicts.
  await page.getByLabel("仅看有冲突的").check()
  await page.getByRole("button", { name: "筛选" }).click()
  await page.waitForURL(/conflicts=true/)
  seen.filtered = Number(await page.locator("#case-count").textContent())
  const row = page.locator(`tr[data-case="${caseId}"]`)
  if ((await row.count()) !== 1) throw new Error("the conflicted case is not listed")

  // Open it: the conflict is highlighted with who wrote each value.
  await row.getByRole("link").click()
  await page.waitForURL(new RegExp(`/cases/${caseId}$`))
  const conflict = page.locator("form.conflict").first()
  seen.conflict_writers = await conflict.locator("li").allTextContents()
  await page.screenshot({ path: join(artefacts, "case.png"), fullPage: true })

  // Resolve it by keeping 重大隐患.
  await conflict.getByLabel(/重大隐患/).check()
  await conflict.getByRole("button", { name: "确认处理" }).click()
  await page.waitForURL(new RegExp(`/cases/${caseId}$`))
  seen.conflicts_after = await page.locator("form.conflict").count()

  // Return it to the inspectors with a comment.
  const back = page.locator("form", { has: page.getByRole("button", { name: "退回" }) })
  await back.locator("textarea").fill(comment)
  await back.getByRole("button", { name: "退回" }).click()
  await page.waitForURL(new RegExp(`/cases/${caseId}$`))
  seen.state = (await page.locator("#review-state").textContent()).trim()
  seen.trail = await page.locator("ol.events li").allTextContents()
  await page.screenshot({ path: join(artefacts, "case-returned.png"), fullPage: true })

  // The bulletin, as charts.
  await page.goto(`${server}/bulletins`)
  seen.bulletin_charts = await page.locator("svg").count()
  await page.screenshot({ path: join(artefacts, "bulletin.png"), fullPage: true })
  seen.ok = true
} finally {
  await browser.close()
}
console.log(JSON.stringify(seen))
