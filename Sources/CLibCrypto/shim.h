// OpenSSL's libcrypto: HMAC-SHA256 for webhook signatures.
#pragma once
#include <openssl/hmac.h>
#include <openssl/evp.h>
