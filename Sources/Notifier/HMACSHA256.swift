import CLibCrypto

/// HMAC-SHA256 from the system's libcrypto, for `X-Flagwatch-Signature` (BoringSSL inside
/// swift-nio-ssl is not a public API, and its symbols are prefixed, so the two do not clash).
enum HMACSHA256 {
    /// The signature header value: `sha256=` and the lowercase hex digest of `message`.
    /// nil when libcrypto fails (it can only fail to allocate).
    static func signatureHeader(key: [UInt8], message: [UInt8]) -> String? {
        hexDigest(key: key, message: message).map { "sha256=" + $0 }
    }

    static func hexDigest(key: [UInt8], message: [UInt8]) -> String? {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var digestLength: UInt32 = 0
        let result = key.withUnsafeBufferPointer { keyBytes in
            message.withUnsafeBufferPointer { messageBytes in
                digest.withUnsafeMutableBufferPointer { digestBytes in
                    // A zero-length key or message may come with a nil base address, which
                    // HMAC accepts together with a zero length.
                    HMAC(
                        EVP_sha256(), keyBytes.baseAddress, Int32(keyBytes.count),
                        messageBytes.baseAddress, messageBytes.count,
                        digestBytes.baseAddress, &digestLength
                    )
                }
            }
        }
        guard result != nil else { return nil }
        let hexDigits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(Int(digestLength) * 2)
        for byte in digest.prefix(Int(digestLength)) {
            hex.append(hexDigits[Int(byte >> 4)])
            hex.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
