/// Access-log lines for the diagnosis tests.
///
/// `Real`: lines a real Envoy 1.40.0 wrote in Istio's TEXT format (and its JSON keys), copied
/// from the envoy-harness sample run (`run.sh --save-sample`): each scenario's first flagged
/// line. They are copied here so the tests never read outside the package.
enum Real {
    static let paymentsRefused =
        #"[2026-11-22T02:34:27.561Z] "GET /api/pay HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uf" "daad7b68-4bb4-4f21-9762-5f4f56c34fee" "payments.default.svc.cluster.local:9001" "127.0.0.1:18019" outbound|9001||payments.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56936 - payments-default"#
    static let ledgerRetried =
        #"[2026-11-22T02:34:27.575Z] "GET /entries HTTP/1.1" 503 URX,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 121 20 - "-" "flag-harness/urx" "655c152b-a540-4740-a28e-b685780f0d66" "ledger.default.svc.cluster.local:9002" "127.0.0.1:18019" outbound|9002||ledger.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56958 - ledger-retry"#
    static let fraudRetryOverflow =
        #"[2026-11-22T02:34:27.610Z] "GET /score HTTP/1.1" 503 UO,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uo_retry" "7c747324-9413-4b17-a199-898aa63fa3a4" "fraud.default.svc.cluster.local:9003" "127.0.0.1:18019" outbound|9003||fraud.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56996 - fraud-retry"#
    static let inventoryFailingHealthCheck =
        #"[2026-11-22T02:34:27.627Z] "GET /stock HTTP/1.1" 503 UH no_healthy_upstream - "-" 0 19 0 - "-" "flag-harness/uh_hc" "7fac5349-9dd9-4f59-8533-7005e263a0e8" "inventory.default.svc.cluster.local:8080" "-" outbound|8080||inventory.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:57042 - inventory-default"#
    static let shippingNoEndpoints =
        #"[2026-11-22T02:34:27.630Z] "GET /quote HTTP/1.1" 503 UH no_healthy_upstream - "-" 0 19 0 - "-" "flag-harness/uh_empty" "06f70b53-d16e-4aa6-a7c9-1b396f266f3a" "shipping.default.svc.cluster.local:80" "-" outbound|80||shipping.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:57054 - shipping-default"#
    static let catalogTerminated =
        #"[2026-11-22T02:34:27.650Z] "GET /items HTTP/1.1" 503 UC upstream_reset_before_response_started{connection_termination} - "-" 0 95 2 - "-" "flag-harness/uc" "eaf93d09-959e-45a0-9307-0aa072a3ec6c" "catalog.default.svc.cluster.local:8080" "127.0.0.1:18012" outbound|8080||catalog.default.svc.cluster.local 127.0.0.1:51448 127.0.0.1:18000 127.0.0.1:57144 - catalog-default"#
    static let searchTimeout =
        #"[2026-11-22T02:34:27.658Z] "GET /q HTTP/1.1" 504 UT response_timeout - "-" 0 24 253 - "-" "flag-harness/ut" "d6456361-6e85-45e9-8723-476f972c9248" "search.default.svc.cluster.local:8080" "127.0.0.1:18011" outbound|8080||search.default.svc.cluster.local 127.0.0.1:40766 127.0.0.1:18000 127.0.0.1:57178 - search-timeout"#
    static let checkoutOverflow =
        #"[2026-11-22T02:34:27.926Z] "GET /cart HTTP/1.1" 503 UO upstream_reset_before_response_started{overflow} - "-" 0 81 0 - "-" "flag-harness/uo" "0047cd87-48ca-447c-b962-fe3f4b8ba1b6" "checkout.default.svc.cluster.local:8080" "-" outbound|8080||checkout.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:57224 - checkout-default"#
    static let authUntrustedCA =
        #"[2026-11-22T02:34:28.577Z] "GET /token HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_X509_verify_cert:_certificate_verification_error_at_depth_0:_unable_to_get_local_issuer_certificate:TLS_error_end} - "TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_X509_verify_cert:_certificate_verification_error_at_depth_0:_unable_to_get_local_issuer_certificate:TLS_error_end" 0 98 3 - "-" "flag-harness/uf_tls_ca" "d6f67779-f4cc-46ba-b3cb-dcb98635d9d6" "auth.default.svc.cluster.local:443" "127.0.0.1:18014" outbound|443||auth.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:57252 - auth-default"#
    /// Not from the harness: Envoy 1.40.0 (the same Istio TEXT format) in front of a TLS server
    /// whose certificate, signed by the CA Envoy trusts, had expired the day before.
    static let authExpiredCertificate =
        #"[2026-12-06T23:08:35.112Z] "GET /token HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_X509_verify_cert:_certificate_verification_error_at_depth_0:_certificate_has_expired:TLS_error_end} - "TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_X509_verify_cert:_certificate_verification_error_at_depth_0:_certificate_has_expired:TLS_error_end" 0 98 10 - "-" "curl/7.88.1" "8600ff04-ccd2-4d83-b3ab-05bdde19f169" "auth.default.svc.cluster.local:443" "127.0.0.1:28111" outbound|443||auth.default.svc.cluster.local - 127.0.0.1:28100 127.0.0.1:41710 - -"#
    /// Not from the harness: Envoy 1.40.0 whose cluster requires the URI SAN
    /// `spiffe://cluster.local/ns/default/sa/billing` (`match_typed_subject_alt_names`), in
    /// front of a server whose valid certificate names `.../sa/auth`.
    static let billingSANMismatch =
        #"[2026-12-06T23:08:42.691Z] "GET /invoice HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_SAN_matcher,_certificate_SANs_are_[auth.default.svc.cluster.local,_spiffe://cluster.local/ns/default/sa/auth]:TLS_error_end} - "TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_SAN_matcher,_certificate_SANs_are_[auth.default.svc.cluster.local,_spiffe://cluster.local/ns/default/sa/auth]:TLS_error_end" 0 98 12 - "-" "curl/7.88.1" "f5b857ff-5733-4267-8913-4e81c28e9a0d" "billing.default.svc.cluster.local:443" "127.0.0.1:28112" outbound|443||billing.default.svc.cluster.local - 127.0.0.1:28100 127.0.0.1:49544 - -"#
    static let legacyPlainText =
        #"[2026-11-22T02:34:28.584Z] "GET / HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end} - "TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end" 0 98 1 - "-" "flag-harness/uf_tls_plain" "cdef7adc-ea91-4e54-a904-de50a9ffa815" "legacy.default.svc.cluster.local:443" "127.0.0.1:18010" outbound|443||legacy.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:57280 - legacy-default"#
    static let vaultConnectTimeout =
        #"[2026-11-22T02:34:28.587Z] "GET /secret HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_timeout} - "-" 0 91 251 - "-" "flag-harness/uf_timeout" "66cf04b1-2b0e-4fd6-ad92-887365a79c2c" "vault.default.svc.cluster.local:8443" "127.0.0.1:18017" outbound|8443||vault.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:57284 - vault-default"#
    static let profileProtocolError =
        #"[2026-11-22T02:34:28.843Z] "GET /me HTTP/1.1" 502 UPE upstream_reset_before_response_started{protocol_error} - "-" 0 87 0 - "-" "flag-harness/upe" "1099abbe-3600-46bb-8501-8fab70c949a4" "profile.default.svc.cluster.local:8080" "127.0.0.1:18015" outbound|8080||profile.default.svc.cluster.local 127.0.0.1:36420 127.0.0.1:18000 127.0.0.1:57314 - profile-default"#
    static let ratingsReset =
        #"[2026-11-22T02:34:28.848Z] "GET /ratings/1 HTTP/1.1" 503 UR upstream_reset_before_response_started{remote_reset} - "-" 0 85 1 - "-" "flag-harness/ur" "de740d76-0392-451c-8898-5f8c7c648e27" "ratings.default.svc.cluster.local:9080" "127.0.0.1:18016" outbound|9080||ratings.default.svc.cluster.local 127.0.0.1:55738 127.0.0.1:18000 127.0.0.1:57348 - ratings-default"#
    static let redisTCPRefused =
        #"[2026-11-22T02:34:31.582Z] "- - -" 0 UF,URX - - "delayed_connect_error:_Connection_refused" 0 0 0 - "-" "-" "-" "-" "127.0.0.1:18019" outbound|6379||redis.default.svc.cluster.local - 127.0.0.1:18003 127.0.0.1:51278 - -"#
    static let noRoute =
        #"[2026-11-22T02:34:27.647Z] "GET /no-such-route HTTP/1.1" 404 NR route_not_found - "-" 0 0 0 - "-" "flag-harness/nr" "ea9e596a-2cb9-44c1-9a65-4d781f777ce0" "reviews.default.svc.cluster.local:8080" "-" - - 127.0.0.1:18000 127.0.0.1:57088 - -"#
    static let reviewsOK =
        #"[2026-11-22T02:34:27.532Z] "GET /reviews/1 HTTP/1.1" 200 - via_upstream - "-" 0 14 11 10 "-" "flag-harness/ok" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "reviews.default.svc.cluster.local:8080" "127.0.0.1:18010" outbound|8080||reviews.default.svc.cluster.local 127.0.0.1:55718 127.0.0.1:18000 127.0.0.1:56922 - reviews-default"#
    static let paymentsRefusedJSON =
        #"{"authority":"payments.default.svc.cluster.local:9001","bytes_received":0,"bytes_sent":98,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:18000","downstream_remote_address":"127.0.0.1:56936","duration":0,"method":"GET","path":"/api/pay","protocol":"HTTP/1.1","request_id":"daad7b68-4bb4-4f21-9762-5f4f56c34fee","requested_server_name":null,"response_code":503,"response_code_details":"upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}","response_flags":"UF","route_name":"payments-default","start_time":"2026-11-22T02:34:27.561Z","upstream_cluster":"outbound|9001||payments.default.svc.cluster.local","upstream_host":"127.0.0.1:18019","upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":"delayed_connect_error:_Connection_refused","user_agent":"flag-harness/uf","x_forwarded_for":null}"#
}

/// Lines the harness cannot produce (older Envoy's texts, TLS failures a sidecar meets, hosts
/// outside the mesh), written by hand in Istio's 1.9+ TEXT format exactly as docs/formats.md §3.1
/// and §4 give it: the values are the ones quoted there from real Istio issues.
enum Written {
    /// Istio 1.14-1.18 era: the old `,` separator and the errno number (docs/formats.md §4).
    static let paymentsRefusedErrno =
        #"[2026-11-22T02:40:01.001Z] "GET /api/pay HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111} - "delayed_connect_error:_111" 0 145 1 - "-" "curl/8.5.0" "0b7d0c2e-3f43-4c59-9d3e-1f0f2a6b1c01" "payments.shop.svc.cluster.local:9001" "10.0.3.17:9001" outbound|9001||payments.shop.svc.cluster.local - 10.96.12.4:9001 10.0.1.5:50412 - default"#

    /// Istio 1.9.5 (istio/istio#34903): SDS has no certificate for the sidecar yet; the old
    /// Envoy printed the reason with spaces.
    static let ordersNoSDSSecret =
        #"[2026-11-22T02:40:02.002Z] "POST /orders HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,TLS_error:_Secret_is_not_supplied_by_SDS} - "TLS error: Secret is not supplied by SDS" 0 159 0 - "-" "okhttp/4.12.0" "7f3b2a10-8c55-4d6e-a1f2-0c9d8e7f6a02" "orders.shop.svc.cluster.local:8080" "10.0.4.21:8080" outbound|8080||orders.shop.svc.cluster.local - 10.96.40.2:8080 10.0.1.5:50500 - default"#

    /// A sidecar calling a mesh service whose pod has no sidecar while the client's
    /// DestinationRule says ISTIO_MUTUAL: the plain-text server's answer fails the handshake.
    static let cartPlainTextServer =
        #"[2026-11-22T02:40:03.003Z] "GET /cart HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end} - "TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end" 0 190 2 - "-" "python-requests/2.32" "a1b2c3d4-0000-4000-8000-000000000003" "cart.shop.svc.cluster.local:8080" "10.0.5.9:8080" outbound|8080||cart.shop.svc.cluster.local - 10.96.7.7:8080 10.0.1.5:50600 - default"#

    /// Istio (istio/istio#46619, old Envoy's spaces): the server refused the client's expired
    /// certificate with an alert, reason `268436501:...:SSLV3_ALERT_CERTIFICATE_EXPIRED`.
    static let ordersPeerRejectsExpired =
        #"[2026-11-22T02:40:08.008Z] "POST /orders HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,TLS_error:_268436501:SSL_routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED} - "TLS error: 268436501:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED" 0 159 0 - "-" "okhttp/4.12.0" "7f3b2a10-8c55-4d6e-a1f2-0c9d8e7f6a08" "orders.shop.svc.cluster.local:8080" "10.0.4.21:8080" outbound|8080||orders.shop.svc.cluster.local - 10.96.40.2:8080 10.0.1.5:50500 - default"#

    /// A TLS reason that is neither a refused certificate nor plain text: the server's
    /// handshake_failure alert (no common cipher or version), BoringSSL's
    /// `SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE` (1040, so 268436496) in Envoy 1.40's shape.
    static let cartHandshakeFailure =
        #"[2026-11-22T02:40:09.009Z] "GET /cart HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268436496:SSL_routines:OPENSSL_internal:SSLV3_ALERT_HANDSHAKE_FAILURE:TLS_error_end} - "TLS_error:|268436496:SSL_routines:OPENSSL_internal:SSLV3_ALERT_HANDSHAKE_FAILURE:TLS_error_end" 0 190 2 - "-" "python-requests/2.32" "a1b2c3d4-0000-4000-8000-000000000009" "cart.shop.svc.cluster.local:8080" "10.0.5.9:8080" outbound|8080||cart.shop.svc.cluster.local - 10.96.7.7:8080 10.0.1.5:50600 - default"#

    /// An external API behind a ServiceEntry closing idle keep-alive connections.
    static let externalTerminated =
        #"[2026-11-22T02:40:04.004Z] "POST /v1/charges HTTP/1.1" 503 UC upstream_reset_before_response_started{connection_termination} - "-" 512 95 3 - "-" "payments/1.4" "c0ffee00-1111-4222-8333-444455556666" "api.example.com" "93.184.216.34:443" outbound|443||api.example.com 10.0.1.5:41230 93.184.216.34:443 10.0.1.5:50700 api.example.com -"#

    /// A DestinationRule subset whose labels match no pod.
    static let reviewsSubsetNoEndpoints =
        #"[2026-11-22T02:40:05.005Z] "GET /reviews/7 HTTP/1.1" 503 UH no_healthy_upstream - "-" 0 19 0 - "-" "Mozilla/5.0" "d00dfeed-2222-4333-8444-555566667777" "reviews.bookinfo.svc.cluster.local:9080" "-" outbound|9080|v2|reviews.bookinfo.svc.cluster.local - 10.96.3.3:9080 10.0.1.5:50800 - default"#

    /// Retries exhausted with no other flag (a retry policy on 5xx answers that stayed 503).
    static let retriesOnly =
        #"[2026-11-22T02:40:06.006Z] "GET /stock HTTP/1.1" 503 URX via_upstream - "-" 0 19 30 29 "-" "curl/8.5.0" "e0e0e0e0-3333-4444-8555-666677778888" "stock.shop.svc.cluster.local:8080" "10.0.6.6:8080" outbound|8080||stock.shop.svc.cluster.local 10.0.1.5:41300 10.96.6.6:8080 10.0.1.5:50900 - default"#

    /// A plain Envoy cluster name (not Istio's `direction|port|subset|host`).
    static let plainEnvoyRefused =
        #"[2026-11-22T02:40:07.007Z] "GET /api HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 190 0 - "-" "curl/8.5.0" "f1f1f1f1-4444-4555-8666-777788889999" "backend:8080" "10.0.7.7:8080" backend_service - 10.0.1.5:10000 10.0.1.5:51000 - local_route"#
}
