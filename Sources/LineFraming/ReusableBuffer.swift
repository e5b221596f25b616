/// A byte buffer that grows when needed and is reused across lines, so joining partial lines
/// and unescaping allocate only until the buffer has reached its working size.
///
/// Views handed out by ``bytes`` stay valid until the next mutation.
final class ReusableBuffer {
    private var storage: UnsafeMutableRawBufferPointer
    private(set) var count = 0

    init(initialCapacity: Int = 4096) {
        storage = .allocate(byteCount: max(initialCapacity, 16), alignment: 16)
    }

    deinit { storage.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<count]) }

    func removeAll() { count = 0 }

    /// Room for `extra` more bytes after `count`.
    private func reserve(_ extra: Int) {
        guard count + extra > storage.count else { return }
        let grown = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(storage.count * 2, count + extra), alignment: 16)
        grown.copyMemory(from: UnsafeRawBufferPointer(rebasing: storage[0..<count]))
        storage.deallocate()
        storage = grown
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        reserve(bytes.count)
        UnsafeMutableRawBufferPointer(rebasing: storage[count..<(count + bytes.count)]).copyMemory(from: bytes)
        count += bytes.count
    }

    /// Appends the JSON-unescaped form of `body` (never longer than `body`).
    func appendUnescaped(_ body: UnsafeRawBufferPointer) {
        reserve(body.count)
        count += JSONEscapes.decode(
            body, into: UnsafeMutableRawBufferPointer(rebasing: storage[count..<(count + body.count)]))
    }
}
