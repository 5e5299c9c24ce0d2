// One MCP session with the official TypeScript SDK client over Streamable
// HTTP against Airlock.
//
// Usage: node mcp_session.mjs URL TOKEN CALLS_JSON
// CALLS_JSON is a list of {"tool": name, "args": {...}}. Prints one JSON
// document: {"tools": [...], "calls": [{is_error, structured, text}]}.
// Exits non-zero when the server refuses the session (no or bad token).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, callsJson] = process.argv.slice(2);
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers },
});
const client = new Client({ name: "airlock-protocol-tests", version: "1.0.0" });
try {
  await client.connect(transport);
  const listed = await client.listTools();
  const calls = [];
  for (const call of JSON.parse(callsJson)) {
    const r = await client.callTool({ name: call.tool, arguments: call.args ?? {} });
    calls.push({
      is_error: Boolean(r.isError),
      structured: r.structuredContent ?? null,
      text: (r.content ?? []).map((c) => c.text ?? "").join(" "),
    });
  }
  console.log(JSON.stringify({ tools: listed.tools, calls }));
  await client.close();
} catch (e) {
  console.error(`refused: ${e}`);
  process.exit(1);
}
