//! Header handling (hop-by-hop removal, X-Forwarded-*, Via) and routing
//! (rewrite, strip_prefix, host / method / header matching, 404).

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "x-custom-hop",
    "x-other-hop",
];

both_drivers! {
    fn hop_by_hop_request_headers_are_not_forwarded(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request(
            "GET /hop HTTP/1.1\r\nHost: x\r\n\
Connection: keep-alive, X-Custom-Hop, x-other-hop\r\n\
Keep-Alive: timeout=5\r\n\
Proxy-Connection: keep-alive\r\n\
TE: trailers\r\n\
Trailer: X-Checksum\r\n\
Upgrade: h2c\r\n\
X-Custom-Hop: secret\r\n\
X-Other-Hop: secret2\r\n\
X-Keep: yes\r\n\r\n",
        );
        assert_eq!(resp.status, 200, "{}{}", resp.head, resp.body_str());
        let seen = &up.requests()[0];
        for name in HOP_BY_HOP {
            // The upstream connection itself may carry strait's own
            // `Connection: keep-alive`; only the client's values must not leak.
            if *name == "connection" {
                for v in seen.header_all("connection") {
                    let v = v.to_ascii_lowercase();
                    assert!(
                        !v.contains("x-custom-hop") && !v.contains("x-other-hop"),
                        "client's Connection value forwarded: {v:?}\n{}",
                        seen.head
                    );
                }
                continue;
            }
            assert!(!seen.has_header(name), "hop-by-hop header {name} was forwarded:\n{}", seen.head);
        }
        assert_eq!(seen.header("x-keep"), Some("yes"), "end-to-end header lost:\n{}", seen.head);
    }

    fn hop_by_hop_response_headers_are_not_forwarded(rt) {
        let up = Upstream::start(|req, out| {
            req.body();
            respond(
                out,
                200,
                &[
                    ("Connection", "X-Resp-Hop"),
                    ("X-Resp-Hop", "secret"),
                    ("Keep-Alive", "timeout=99"),
                    ("Proxy-Connection", "keep-alive"),
                    ("X-End-To-End", "kept"),
                ],
                b"ok",
            );
        });
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp.status, 200);
        assert!(!resp.has_header("x-resp-hop"), "header named in Connection forwarded:\n{}", resp.head);
        assert!(!resp.has_header("proxy-connection"), "Proxy-Connection forwarded:\n{}", resp.head);
        assert!(
            resp.header("keep-alive") != Some("timeout=99"),
            "upstream's Keep-Alive forwarded:\n{}",
            resp.head
        );
        assert!(
            !resp.header_all("connection").iter().any(|v| v.to_ascii_lowercase().contains("x-resp-hop")),
            "upstream's Connection forwarded:\n{}",
            resp.head
        );
        assert_eq!(resp.header("x-end-to-end"), Some("kept"));
        assert_eq!(resp.body_str(), "ok");
    }

    fn x_forwarded_for_is_set_to_client_ip(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp.status, 200);
        let seen = &up.requests()[0];
        assert_eq!(seen.header_all("x-forwarded-for").join(", "), "127.0.0.1", "\n{}", seen.head);
    }

    fn x_forwarded_for_is_appended_to_existing_value(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n\r\n",
        );
        assert_eq!(resp.status, 200);
        let seen = &up.requests()[0];
        // One combined field or several lines: the list must read the same.
        let joined = seen.header_all("x-forwarded-for").join(", ");
        assert_eq!(joined, "203.0.113.7, 198.51.100.2, 127.0.0.1", "\n{}", seen.head);
    }

    fn x_forwarded_proto_and_via_are_added(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp.status, 200);
        let seen = &up.requests()[0];
        assert_eq!(seen.header_all("x-forwarded-proto"), vec!["http"], "\n{}", seen.head);
        assert_eq!(seen.header_all("via"), vec!["1.1 strait"], "\n{}", seen.head);
    }

    fn end_to_end_headers_and_method_are_forwarded(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request(
            "PATCH /items/7?x=1&y=%20 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\n\
X-Multi: a\r\nX-Multi: b\r\nContent-Length: 2\r\n\r\n{}",
        );
        assert_eq!(resp.status, 200);
        let seen = &up.requests()[0];
        assert_eq!(seen.method, "PATCH");
        assert_eq!(seen.target, "/items/7?x=1&y=%20");
        assert_eq!(seen.header("authorization"), Some("Bearer t0k"));
        let multi: Vec<&str> = seen.header_all("x-multi").iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        assert_eq!(multi, vec!["a", "b"], "\n{}", seen.head);
        assert_eq!(resp.body_str(), "{}");
    }

    fn rewrite_replaces_matched_prefix(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET /old/a/b?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp.status, 200, "{}", resp.head);
        assert_eq!(up.requests()[0].target, "/new/a/b?x=1");
    }

    fn strip_prefix_removes_matched_prefix(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET /strip/foo/bar?y=2 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp.status, 200, "{}", resp.head);
        let target = up.requests()[0].target.clone();
        assert_eq!(target, "/foo/bar?y=2");
    }

    fn unrewritten_route_forwards_path_unchanged(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET /big/x/y?z HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp.status, 200);
        let resp2 = c.request("GET /older/x HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp2.status, 200);
        let seen = up.requests();
        assert_eq!(seen[0].target, "/big/x/y?z");
        // `/older/` does not start with `/old/`: falls through to `all`, unchanged.
        assert_eq!(seen[1].target, "/older/x");
    }

    fn host_method_and_header_match_selects_respond_route(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET /any HTTP/1.1\r\nHost: api.example.com\r\nX-Tenant: acme\r\n\r\n");
        assert_eq!(resp.status, 200, "{}", resp.head);
        assert_eq!(resp.body_str(), "tenant acme");
        assert!(
            resp.header("content-type").unwrap_or("").starts_with("text/plain"),
            "{}",
            resp.head
        );
        // Host with a port and in another case still matches.
        let resp = c.request("GET /any HTTP/1.1\r\nHost: API.Example.COM:8080\r\nX-Tenant: acme\r\n\r\n");
        assert_eq!(resp.body_str(), "tenant acme", "{}", resp.head);
        assert!(up.requests().is_empty(), "the respond route must not contact the upstream");
    }

    fn host_method_or_header_mismatch_falls_through(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let cases = [
            // wrong method
            "POST /m HTTP/1.1\r\nHost: api.example.com\r\nX-Tenant: acme\r\nContent-Length: 0\r\n\r\n",
            // wrong header value
            "GET /h HTTP/1.1\r\nHost: api.example.com\r\nX-Tenant: other\r\n\r\n",
            // header missing
            "GET /n HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            // the bare domain is not `*.example.com`
            "GET /d HTTP/1.1\r\nHost: example.com\r\nX-Tenant: acme\r\n\r\n",
            // a different domain that merely ends the same way
            "GET /e HTTP/1.1\r\nHost: notexample.com\r\nX-Tenant: acme\r\n\r\n",
        ];
        for raw in cases {
            let resp = c.request(raw);
            assert_eq!(resp.status, 200, "{raw:?}: {}", resp.head);
            assert_ne!(resp.body_str(), "tenant acme", "{raw:?} matched the hosted route");
            assert!(resp.has_header("x-target"), "{raw:?} was not proxied: {}", resp.head);
        }
        assert_eq!(up.requests().len(), cases.len());
    }

    fn no_matching_route_gets_404_json(rt) {
        let up = Upstream::echo();
        let yaml = format!(
            r#"workers: 1
runtime: epoll
shutdown_timeout: 5s
admin: {{ listen: 127.0.0.1:0 }}
listeners:
  - name: main
    listen: 127.0.0.1:0
upstreams:
  - name: backend
    targets: ["{}"]
routes:
  - name: api
    match: {{ path_prefix: /api/ }}
    upstream: backend
"#,
            up.addr
        );
        let strait = Strait::start(&yaml, rt);
        let mut c = strait.client();
        let resp = c.request("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
        resp.assert_error(404);
        let ok = c.request("GET /api/yes HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(ok.status, 200, "{}", ok.head);
        assert_eq!(up.requests().len(), 1);
        assert_eq!(up.requests()[0].target, "/api/yes");
    }
}
