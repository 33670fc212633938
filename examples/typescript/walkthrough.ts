// The README walkthrough's purchase with the TypeScript SDK (gen/ts, @certhosting/sdk): buy a
// 3-year hosted DV certificate, follow the account's events until the lifecycle service has the
// bundle, and apply for its first certificate, printing the DNS record to publish.
//
// Against `make run` (from the repository root, after `make npm-deps`):
//
//	node examples/typescript/dist/walkthrough.js
//
// Environment: CERTHOSTING_ORDER_ADDR and CERTHOSTING_LIFECYCLE_ADDR (default 127.0.0.1:50051 and
// :50052), CERTHOSTING_API_KEY or CERTHOSTING_API_KEY_FILE (default var/demo-api-key),
// CERTHOSTING_DOMAIN (default shop.example.com), CERTHOSTING_CONTACT_EMAIL (default ops@example.com).
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

import type { DescEnum } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { lifecyclev1, orderv1 } from "@certhosting/sdk";

const env = process.env;
const orderAddr = env.CERTHOSTING_ORDER_ADDR ?? "127.0.0.1:50051";
const lifecycleAddr = env.CERTHOSTING_LIFECYCLE_ADDR ?? "127.0.0.1:50052";
const domain = env.CERTHOSTING_DOMAIN ?? "shop.example.com";
const email = env.CERTHOSTING_CONTACT_EMAIL ?? "ops@example.com";
const apiKey = (env.CERTHOSTING_API_KEY ?? readFileSync(env.CERTHOSTING_API_KEY_FILE ?? "var/demo-api-key", "utf8")).trim();

// Every call acts for the account of the API key in the authorization metadata.
const bearer: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${apiKey}`);
  return next(req);
};

// name is an enum value's name as the proto spells it (CERTIFICATE_STATE_HOSTED), as grpcurl and
// the other SDKs print it; the TypeScript enums drop the prefix (CertificateState.HOSTED).
function name(e: DescEnum, value: number): string {
  return e.value[value]?.name ?? String(value);
}

// gRPC over HTTP/2 in plaintext: the services listen on loopback.
function transport(addr: string) {
  return createGrpcTransport({ baseUrl: `http://${addr}`, interceptors: [bearer] });
}

async function main() {
  const orders = createClient(orderv1.OrderService, transport(orderAddr));
  const lifecycle = createClient(lifecyclev1.LifecycleService, transport(lifecycleAddr));

  // request_id is the idempotency key: a retry of this call returns the same order. A new one
  // for each run, so that each run buys (and applies) anew.
  const requestId = `sdk-ts-${randomUUID()}`;
  const { order } = await orders.createOrder({
    requestId,
    productId: "dv-single",
    domainCount: 1,
    subscriptionYears: 3,
    hosting: true,
  });
  console.log(`order: ${order!.orderId}`);

  // Delivery of the paid order to the lifecycle service is asynchronous. Watch the account's
  // events from now on (an empty after_event_id starts at the newest), opened before paying so
  // that the bundle's first event cannot be missed: the response headers say the stream has
  // started. The stream is aborted once the event is here (or after 30 s): left alone it would
  // keep this process running.
  const watch = new AbortController();
  const deadline = setTimeout(() => watch.abort(new Error("no event for the bundle within 30 s")), 30_000);
  let started: () => void;
  const streamStarted = new Promise<void>((resolve) => (started = resolve));
  let bundleId: (id: string) => void;
  const paidBundle = new Promise<string>((resolve) => (bundleId = resolve));
  const firstEvent = (async () => {
    const events = lifecycle.watchEvents({ afterEventId: "" }, { signal: watch.signal, onHeader: () => started() });
    for await (const { event } of events) {
      if (event && event.bundleId === (await paidBundle)) {
        return event;
      }
    }
    throw new Error("the event stream ended before the bundle's first event");
  })();
  firstEvent.catch(() => started()); // a stream that fails before its headers must not hang main

  await streamStarted;
  const paid = await orders.payOrder({ orderId: order!.orderId, paymentReference: `pay-${requestId}` });
  console.log(`bundle: ${paid.order!.bundleId}`);
  bundleId!(paid.order!.bundleId);
  const event = await firstEvent.finally(() => {
    clearTimeout(deadline);
    watch.abort();
  });
  console.log(
    `event: ${event.eventId} ${name(lifecyclev1.EventTypeSchema, event.type)} certificate ${event.certificateId} ` +
      `${name(lifecyclev1.CertificateStateSchema, event.toState)} (${event.reason})`,
  );

  // The instance to apply for: the bundle's PENDING_APPLICATION one (instance 1; the others are
  // NOT_ACTIVATED until their year comes).
  const { certificates } = await lifecycle.listCertificates({
    bundleId: paid.order!.bundleId,
    state: lifecyclev1.CertificateState.PENDING_APPLICATION,
  });
  if (certificates.length !== 1) {
    throw new Error(`bundle ${paid.order!.bundleId} has ${certificates.length} PENDING_APPLICATION certificates, want 1`);
  }
  const certificateId = certificates[0].certificateId;
  console.log(`certificate: ${certificateId}`);

  // Apply: the domains (the first is the common name) and a contact. The service generates the
  // key; the answer names the DNS records the CA looks up.
  const applied = await lifecycle.submitApplication({
    certificateId,
    domains: [domain],
    contact: { email },
  });
  console.log(`state: ${name(lifecyclev1.CertificateStateSchema, applied.certificate!.state)}`);
  console.log("publish these DNS records (with make run: append the lines to var/dev.zone):");
  for (const r of applied.instructions) {
    console.log(`${r.name}. 60 IN ${r.type} "${r.value}"`);
  }
}

main().catch((err: unknown) => {
  const e = ConnectError.from(err);
  console.error(`walkthrough: ${e.code === Code.Unknown ? e.message : `${Code[e.code]}: ${e.rawMessage}`}`);
  process.exit(1);
});
