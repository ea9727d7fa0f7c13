// Workspace home: greets the trainer and counts their demonstrations.
import { api, setup } from "/static/workspace/ws.js";
const me = await setup("/workspace");
const { demos } = await api("GET", "/api/workspace/demos");
const drafts = demos.filter((d) => d.status === "draft").length;
document.getElementById("hello").textContent = `Welcome, ${me.username}.`;
document.getElementById("demo-count").textContent =
  `${demos.length - drafts} submitted, ${drafts} draft(s) in progress.`;
if (me.role === "admin") document.getElementById("admin-card").hidden = false;
