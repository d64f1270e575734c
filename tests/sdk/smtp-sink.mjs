// A real SMTP server for the tests (nodemailer's smtp-server): accepts every message on
// 127.0.0.1:<port> and appends it to <file> as one JSON line {from, to, subject, text, raw},
// the text decoded from its transfer encoding (quoted-printable or base64).
// Usage: node smtp-sink.mjs <port> <file>. Prints "listening <port>" once it accepts mail.
import { SMTPServer } from "smtp-server";
import { appendFileSync } from "node:fs";

const [port, file] = process.argv.slice(2);
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS"],
  logger: false,
  onData(stream, session, callback) {
    const chunks = [];
    stream.on("data", (chunk) => chunks.push(chunk));
    stream.on("end", async () => {
      const raw = Buffer.concat(chunks);
      const parsed = parse(raw.toString("utf8"));
      appendFileSync(
        file,
        JSON.stringify({
          from: session.envelope.mailFrom && session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: parsed.subject,
          text: parsed.text,
          raw: raw.toString("utf8"),
        }) + "\n",
      );
      callback();
    });
  },
});
// A single-part text mail: its subject, and its body decoded.
function parse(raw) {
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, " ");
  const body = raw.slice(split + 4);
  const header = (name) => {
    const line = head.split("\r\n").find((l) => l.toLowerCase().startsWith(name + ":"));
    return line ? line.slice(name.length + 1).trim() : "";
  };
  const encoding = header("content-transfer-encoding").toLowerCase();
  let text = body;
  if (encoding === "quoted-printable") {
    text = Buffer.from(
      body.replace(/=\r\n/g, "").replace(/=([0-9A-Fa-f]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16))),
      "latin1",
    ).toString("utf8");
  } else if (encoding === "base64") {
    text = Buffer.from(body, "base64").toString("utf8");
  }
  return { subject: header("subject"), text };
}

server.listen(Number(port), "127.0.0.1", () => console.log(`listening ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
