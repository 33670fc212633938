"""The README walkthrough's purchase with the Python SDK (gen/python, package certhosting-sdk).

Buys a 3-year hosted DV certificate, follows the account's events until the lifecycle service has
the bundle, and applies for its first certificate, printing the DNS record to publish.

Against `make run`, from the repository root (the SDK installed, or PYTHONPATH=gen/python):

    /usr/bin/python3 examples/python/walkthrough.py

Environment: CERTHOSTING_ORDER_ADDR and CERTHOSTING_LIFECYCLE_ADDR (default 127.0.0.1:50051 and
:50052), CERTHOSTING_API_KEY or CERTHOSTING_API_KEY_FILE (default var/demo-api-key),
CERTHOSTING_DOMAIN (default shop.example.com), CERTHOSTING_CONTACT_EMAIL (default ops@example.com).
"""

import os
import sys
import uuid

import grpc

from certhosting.lifecycle.v1 import lifecycle_pb2, lifecycle_pb2_grpc
from certhosting.order.v1 import order_pb2, order_pb2_grpc

# How long the bundle's delivery may take (milliseconds usually), and any other call.
TIMEOUT_SECONDS = 30


def api_key():
    key = os.environ.get("CERTHOSTING_API_KEY")
    if key is None:
        with open(os.environ.get("CERTHOSTING_API_KEY_FILE", "var/demo-api-key")) as f:
            key = f.read()
    return key.strip()


def main():
    order_addr = os.environ.get("CERTHOSTING_ORDER_ADDR", "127.0.0.1:50051")
    lifecycle_addr = os.environ.get("CERTHOSTING_LIFECYCLE_ADDR", "127.0.0.1:50052")
    domain = os.environ.get("CERTHOSTING_DOMAIN", "shop.example.com")
    email = os.environ.get("CERTHOSTING_CONTACT_EMAIL", "ops@example.com")
    # Every call acts for the account of the API key in the authorization metadata. The services
    # listen on loopback in plaintext.
    auth = (("authorization", "Bearer " + api_key()),)

    with grpc.insecure_channel(order_addr) as oc, grpc.insecure_channel(lifecycle_addr) as lc:
        orders = order_pb2_grpc.OrderServiceStub(oc)
        lifecycle = lifecycle_pb2_grpc.LifecycleServiceStub(lc)

        # request_id is the idempotency key: a retry of this call returns the same order. A new
        # one for each run, so that each run buys (and applies) anew.
        request_id = "sdk-py-" + uuid.uuid4().hex
        order = orders.CreateOrder(
            order_pb2.CreateOrderRequest(
                request_id=request_id,
                product_id="dv-single",
                domain_count=1,
                subscription_years=3,
                hosting=True,
            ),
            metadata=auth,
            timeout=TIMEOUT_SECONDS,
        ).order
        print("order:", order.order_id)

        # Delivery of the paid order to the lifecycle service is asynchronous. Watch the account's
        # events from now on (an empty after_event_id starts at the newest), opened before paying
        # so that the bundle's first event cannot be missed: once the response headers are here,
        # the stream has started.
        events = lifecycle.WatchEvents(
            lifecycle_pb2.WatchEventsRequest(after_event_id=""), metadata=auth, timeout=TIMEOUT_SECONDS
        )
        events.initial_metadata()
        try:
            paid = orders.PayOrder(
                order_pb2.PayOrderRequest(order_id=order.order_id, payment_reference="pay-" + request_id),
                metadata=auth,
                timeout=TIMEOUT_SECONDS,
            ).order
            print("bundle:", paid.bundle_id)
            event = next((r.event for r in events if r.event.bundle_id == paid.bundle_id), None)
        finally:
            events.cancel()
        if event is None:
            sys.exit("the event stream ended before the bundle's first event")
        print(
            "event: %s %s certificate %s %s (%s)"
            % (
                event.event_id,
                lifecycle_pb2.EventType.Name(event.type),
                event.certificate_id,
                lifecycle_pb2.CertificateState.Name(event.to_state),
                event.reason,
            )
        )

        # The instance to apply for: the bundle's PENDING_APPLICATION one (instance 1; the others
        # are NOT_ACTIVATED until their year comes).
        certificates = lifecycle.ListCertificates(
            lifecycle_pb2.ListCertificatesRequest(
                bundle_id=paid.bundle_id, state=lifecycle_pb2.CERTIFICATE_STATE_PENDING_APPLICATION
            ),
            metadata=auth,
            timeout=TIMEOUT_SECONDS,
        ).certificates
        if len(certificates) != 1:
            sys.exit("bundle %s has %d PENDING_APPLICATION certificates, want 1" % (paid.bundle_id, len(certificates)))
        certificate_id = certificates[0].certificate_id
        print("certificate:", certificate_id)

        # Apply: the domains (the first is the common name) and a contact. The service generates
        # the key; the answer names the DNS records the CA looks up.
        applied = lifecycle.SubmitApplication(
            lifecycle_pb2.SubmitApplicationRequest(
                certificate_id=certificate_id,
                domains=[domain],
                contact=lifecycle_pb2.Contact(email=email),
            ),
            metadata=auth,
            timeout=TIMEOUT_SECONDS,
        )
        print("state:", lifecycle_pb2.CertificateState.Name(applied.certificate.state))
        print("publish these DNS records (with make run: append the lines to var/dev.zone):")
        for r in applied.instructions:
            print('%s. 60 IN %s "%s"' % (r.name, r.type, r.value))


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        sys.exit("walkthrough: %s: %s" % (e.code().name, e.details()))
