// ThreadSanitizer annotations for Debian's Abseil synchronization primitives.
//
// Debian's libabsl_synchronization.so is not built with -fsanitize=thread, so the
// annotations absl::Mutex carries for TSan (ABSL_TSAN_MUTEX_*) are compiled out: TSan
// sees neither its lock nor its unlock, and reports every access guarded by an
// absl::Mutex in latpred as a race. Linked into every executable of a
// LATPRED_SANITIZE=thread build (root CMakeLists.txt), this file defines the public
// lock, wait and notify functions of Mutex, CondVar and Notification with hidden
// visibility: latpred's calls bind here at link time, each forwards to the library's
// definition (dlsym RTLD_NEXT) and tells TSan what it did, as Abseil's own
// annotations would. The libraries' own calls (gRPC's) still go to the library
// directly: their memory accesses are not instrumented either.
//
// Conditions evaluated inside Abseil (Await, LockWhen) run with TSan's accesses ignored,
// as between any pre- and post- annotation: races in a Condition's function are not
// seen. Mutexes held in reader mode are tracked per thread so that Await and
// CondVar::Wait release and retake them in the mode they are held in.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#if !ABSL_OPTION_USE_INLINE_NAMESPACE
#error "tsan_absl.cc spells Abseil's symbols with its inline namespace"
#endif

namespace {

#define LATPRED_STR2(x) #x
#define LATPRED_STR(x) LATPRED_STR2(x)

// The library's definition of `absl::<ns>::<rest>` (an Itanium mangled name, `konst`
// for a const member function); aborts when it is missing.
void* Real(bool konst, const char* rest) {
  const std::string ns = LATPRED_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(konst ? "_ZNK" : "_ZN") + "4absl" +
                           std::to_string(ns.size()) + ns + rest;
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl: %s not found in Abseil: %s\n", name.c_str(), dlerror());
    std::abort();
  }
  return fn;
}

#define REAL(type, konst, rest) \
  static const auto real = reinterpret_cast<type>(Real(konst, rest))

// Mutexes this thread holds in reader mode (few at a time).
constexpr int kMaxReaderHeld = 32;
thread_local const void* reader_held[kMaxReaderHeld];
thread_local int reader_held_count = 0;

void AddReader(const void* mu) {
  if (reader_held_count < kMaxReaderHeld) reader_held[reader_held_count++] = mu;
}
void RemoveReader(const void* mu) {
  for (int i = reader_held_count - 1; i >= 0; --i) {
    if (reader_held[i] == mu) {
      reader_held[i] = reader_held[--reader_held_count];
      return;
    }
  }
}
unsigned HeldFlags(const void* mu) {
  for (int i = 0; i < reader_held_count; ++i) {
    if (reader_held[i] == mu) return __tsan_mutex_read_lock;
  }
  return 0;
}

// Around an operation that releases `mu` and takes it again before it returns.
struct Reacquire {
  explicit Reacquire(absl::Mutex* mu) : mu(mu), flags(HeldFlags(mu)) {
    __tsan_mutex_pre_unlock(mu, flags);
  }
  ~Reacquire() {
    __tsan_mutex_post_unlock(mu, flags);
    __tsan_mutex_pre_lock(mu, flags);
    __tsan_mutex_post_lock(mu, flags, 0);
  }
  absl::Mutex* mu;
  unsigned flags;
};

// The address of Notification::notified_yet_, which the inline HasBeenNotified() loads
// with acquire order.
void* NotifiedFlag(const absl::Notification* n) {
  static_assert(sizeof(absl::Notification) == 2 * sizeof(absl::Mutex),
                "absl::Notification is expected to be { Mutex mutex_; atomic<bool> notified_yet_; }");
  return const_cast<char*>(reinterpret_cast<const char*>(n)) + sizeof(absl::Mutex);
}

}  // namespace

#define HIDDEN __attribute__((visibility("hidden")))

namespace absl {
ABSL_NAMESPACE_BEGIN

HIDDEN void Mutex::Lock() {
  REAL(void (*)(Mutex*), false, "5Mutex4LockEv");
  __tsan_mutex_pre_lock(this, 0);
  real(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

HIDDEN void Mutex::Unlock() {
  REAL(void (*)(Mutex*), false, "5Mutex6UnlockEv");
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

HIDDEN bool Mutex::TryLock() {
  REAL(bool (*)(Mutex*), false, "5Mutex7TryLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(
      this, __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

HIDDEN void Mutex::ReaderLock() {
  REAL(void (*)(Mutex*), false, "5Mutex10ReaderLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  AddReader(this);
}

HIDDEN void Mutex::ReaderUnlock() {
  REAL(void (*)(Mutex*), false, "5Mutex12ReaderUnlockEv");
  RemoveReader(this);
  __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
}

HIDDEN bool Mutex::ReaderTryLock() {
  REAL(bool (*)(Mutex*), false, "5Mutex13ReaderTryLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(
      this, locked ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed, 0);
  if (locked) AddReader(this);
  return locked;
}

HIDDEN void Mutex::LockWhen(const Condition& cond) {
  REAL(void (*)(Mutex*, const Condition*), false, "5Mutex8LockWhenERKNS0_9ConditionE");
  __tsan_mutex_pre_lock(this, 0);
  real(this, &cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

HIDDEN bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  REAL(bool (*)(Mutex*, const Condition*, Duration), false,
       "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  __tsan_mutex_pre_lock(this, 0);
  const bool ok = real(this, &cond, timeout);
  __tsan_mutex_post_lock(this, 0, 0);  // held whether or not the condition became true
  return ok;
}

HIDDEN bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  REAL(bool (*)(Mutex*, const Condition*, Time), false,
       "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_mutex_pre_lock(this, 0);
  const bool ok = real(this, &cond, deadline);
  __tsan_mutex_post_lock(this, 0, 0);
  return ok;
}

HIDDEN void Mutex::ReaderLockWhen(const Condition& cond) {
  REAL(void (*)(Mutex*, const Condition*), false, "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this, &cond);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  AddReader(this);
}

HIDDEN bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  REAL(bool (*)(Mutex*, const Condition*, Duration), false,
       "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  const bool ok = real(this, &cond, timeout);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  AddReader(this);
  return ok;
}

HIDDEN bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  REAL(bool (*)(Mutex*, const Condition*, Time), false,
       "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  const bool ok = real(this, &cond, deadline);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  AddReader(this);
  return ok;
}

HIDDEN void Mutex::Await(const Condition& cond) {
  REAL(void (*)(Mutex*, const Condition*), false, "5Mutex5AwaitERKNS0_9ConditionE");
  Reacquire annotate(this);
  real(this, &cond);
}

HIDDEN bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  REAL(bool (*)(Mutex*, const Condition*, Duration), false,
       "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Reacquire annotate(this);
  return real(this, &cond, timeout);
}

HIDDEN bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  REAL(bool (*)(Mutex*, const Condition*, Time), false,
       "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Reacquire annotate(this);
  return real(this, &cond, deadline);
}

HIDDEN Mutex::~Mutex() {
  REAL(void (*)(Mutex*), false, "5MutexD1Ev");
  __tsan_mutex_destroy(this, 0);
  real(this);
}

HIDDEN void CondVar::Wait(Mutex* mu) {
  REAL(void (*)(CondVar*, Mutex*), false, "7CondVar4WaitEPNS0_5MutexE");
  Reacquire annotate(mu);
  real(this, mu);
}

HIDDEN bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  REAL(bool (*)(CondVar*, Mutex*, Duration), false,
       "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Reacquire annotate(mu);
  return real(this, mu, timeout);
}

HIDDEN bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  REAL(bool (*)(CondVar*, Mutex*, Time), false,
       "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Reacquire annotate(mu);
  return real(this, mu, deadline);
}

// Release() unlocks through the library's own call of Unlock(), which is not ours:
// annotate it here. The object holds only the Mutex pointer.
HIDDEN void ReleasableMutexLock::Release() {
  REAL(void (*)(ReleasableMutexLock*), false, "19ReleasableMutexLock7ReleaseEv");
  static_assert(sizeof(ReleasableMutexLock) == sizeof(Mutex*),
                "absl::ReleasableMutexLock is expected to hold only its Mutex*");
  Mutex* mu = *reinterpret_cast<Mutex**>(this);
  __tsan_mutex_pre_unlock(mu, 0);
  real(this);
  __tsan_mutex_post_unlock(mu, 0);
}

// A Notification is a release by Notify() and an acquire by a wait that saw it.
HIDDEN void Notification::Notify() {
  REAL(void (*)(Notification*), false, "12Notification6NotifyEv");
  __tsan_release(this);
  __tsan_release(NotifiedFlag(this));
  real(this);
}

HIDDEN void Notification::WaitForNotification() const {
  REAL(void (*)(const Notification*), true, "12Notification19WaitForNotificationEv");
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

HIDDEN bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  REAL(bool (*)(const Notification*, Duration), true,
       "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

HIDDEN bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  REAL(bool (*)(const Notification*, Time), true,
       "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
