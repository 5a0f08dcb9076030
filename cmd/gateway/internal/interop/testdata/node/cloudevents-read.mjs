// Reads Kafka records as CloudEvents with the CloudEvents SDK's Kafka binding
// (binary mode), independent of the gateway's Go code, for the test
// TestCloudEventsSDK.
//
// Environment: RECORDS (a file holding a JSON array of {"key", "value",
// "headers": {name: value}}). Prints a JSON array: for each record, the
// event's attributes and data as the SDK read and validated them, or why it
// refused the record.
import { Kafka } from 'cloudevents';
import { readFileSync } from 'node:fs';

const out = [];
for (const r of JSON.parse(readFileSync(process.env.RECORDS, 'utf8'))) {
  try {
    const e = Kafka.toEvent({ key: r.key, value: Buffer.from(r.value, 'utf8'), headers: r.headers });
    e.validate();
    out.push({ ok: true, id: e.id, type: e.type, source: e.source, subject: e.subject, time: e.time,
      specversion: e.specversion, datacontenttype: e.datacontenttype, partitionkey: e.partitionkey, dataIsObject: typeof e.data === 'object' });
  } catch (err) {
    out.push({ ok: false, error: String(err && err.message), errors: err && err.errors });
  }
}
process.stdout.write(JSON.stringify(out));
