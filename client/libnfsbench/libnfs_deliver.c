/*
 * libnfs_deliver: the libnfs peer of the client's Deliver benchmark.
 *
 * It runs N worker threads; each has its own libnfs context and TCP
 * connection and delivers messages synchronously, one at a time, the way
 * a Maildir delivery agent on a kernel-less front end would with libnfs:
 *
 *   open(tmp/<unique>, O_CREAT|O_EXCL|O_WRONLY, 0600)   LOOKUPs + CREATE
 *   write(size bytes)                                  WRITE
 *   fsync()                                            COMMIT
 *   close()
 *   rename(tmp/<unique>, new/<unique>)                 RENAME
 *
 * for a fixed duration, then prints one line:
 *
 *   messages=M seconds=S rate=R errors=E
 *
 * Usage:
 *   libnfs_deliver -u nfs://127.0.0.1/export?version=3&nfsport=P&mountport=P
 *                  [-w workers] [-d seconds] [-s size] [-b boxes]
 *
 * Mailboxes are u00/Maildir .. u<boxes-1>/Maildir below the export; they
 * must exist with tmp/, new/ and cur/. Written for libnfs 4.0's
 * synchronous API (nfs_write without an offset).
 *
 * Build: cc -O2 -o libnfs_deliver libnfs_deliver.c -lnfs -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>

struct config {
	const char *url;
	int workers;
	double seconds;
	size_t size;
	int boxes;
};

struct worker {
	int id;
	const struct config *cfg;
	pthread_t thread;
	uint64_t delivered;
	uint64_t errors;
	int failed; /* could not mount */
};

static atomic_int stop_flag;
/* ready holds every worker (mounted or failed) and main, so the clock
 * starts once all contexts are mounted. */
static pthread_barrier_t ready;
static pid_t self_pid;

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* deliver_one runs one delivery; returns 0 on success. */
static int deliver_one(struct nfs_context *nfs, struct worker *w, const char *buf, uint64_t seq)
{
	char tmp[256], dst[256], uniq[160];
	struct timespec ts;
	struct nfsfh *fh = NULL;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(uniq, sizeof uniq, "%lld.M%ldP%dT%dQ%" PRIu64 ".libnfsbench,S=%zu",
	         (long long)ts.tv_sec, ts.tv_nsec / 1000, (int)self_pid, w->id, seq, w->cfg->size);
	int box = (int)((seq * (uint64_t)w->cfg->workers + (uint64_t)w->id) % (uint64_t)w->cfg->boxes);
	snprintf(tmp, sizeof tmp, "/u%02d/Maildir/tmp/%s", box, uniq);
	snprintf(dst, sizeof dst, "/u%02d/Maildir/new/%s", box, uniq);

	rc = nfs_open2(nfs, tmp, O_CREAT | O_EXCL | O_WRONLY, 0600, &fh);
	if (rc < 0) {
		fprintf(stderr, "worker %d: open %s: %s\n", w->id, tmp, nfs_get_error(nfs));
		return -1;
	}
	size_t done = 0;
	while (done < w->cfg->size) {
		rc = nfs_write(nfs, fh, w->cfg->size - done, (void *)(buf + done));
		if (rc <= 0) {
			fprintf(stderr, "worker %d: write: %s\n", w->id, nfs_get_error(nfs));
			nfs_close(nfs, fh);
			nfs_unlink(nfs, tmp);
			return -1;
		}
		done += (size_t)rc;
	}
	if (nfs_fsync(nfs, fh) < 0) {
		fprintf(stderr, "worker %d: fsync: %s\n", w->id, nfs_get_error(nfs));
		nfs_close(nfs, fh);
		nfs_unlink(nfs, tmp);
		return -1;
	}
	if (nfs_close(nfs, fh) < 0) {
		fprintf(stderr, "worker %d: close: %s\n", w->id, nfs_get_error(nfs));
		nfs_unlink(nfs, tmp);
		return -1;
	}
	if (nfs_rename(nfs, tmp, dst) < 0) {
		fprintf(stderr, "worker %d: rename: %s\n", w->id, nfs_get_error(nfs));
		nfs_unlink(nfs, tmp);
		return -1;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct nfs_context *nfs = nfs_init_context();
	struct nfs_url *url = NULL;
	char *buf = NULL;

	if (nfs == NULL) {
		fprintf(stderr, "worker %d: nfs_init_context failed\n", w->id);
		w->failed = 1;
		return NULL;
	}
	url = nfs_parse_url_dir(nfs, w->cfg->url);
	if (url == NULL) {
		fprintf(stderr, "worker %d: parse url: %s\n", w->id, nfs_get_error(nfs));
		w->failed = 1;
		goto out;
	}
	if (nfs_mount(nfs, url->server, url->path) != 0) {
		fprintf(stderr, "worker %d: mount %s:%s: %s\n", w->id, url->server, url->path, nfs_get_error(nfs));
		w->failed = 1;
		goto out;
	}
	buf = malloc(w->cfg->size);
	if (buf == NULL) {
		w->failed = 1;
		goto out;
	}
	pthread_barrier_wait(&ready);
	for (size_t i = 0; i < w->cfg->size; i++)
		buf[i] = (char)('a' + (i % 26));
	for (uint64_t seq = 0; !atomic_load(&stop_flag); seq++) {
		if (deliver_one(nfs, w, buf, seq) == 0)
			w->delivered++;
		else if (++w->errors > 100)
			break;
	}
out:
	if (w->failed)
		pthread_barrier_wait(&ready);
	free(buf);
	if (url != NULL)
		nfs_destroy_url(url);
	nfs_destroy_context(nfs);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: libnfs_deliver -u URL [-w workers] [-d seconds] [-s size] [-b boxes]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct config cfg = {.workers = 32, .seconds = 10, .size = 4096, .boxes = 20};
	int opt;

	while ((opt = getopt(argc, argv, "u:w:d:s:b:")) != -1) {
		switch (opt) {
		case 'u': cfg.url = optarg; break;
		case 'w': cfg.workers = atoi(optarg); break;
		case 'd': cfg.seconds = atof(optarg); break;
		case 's': cfg.size = (size_t)strtoul(optarg, NULL, 10); break;
		case 'b': cfg.boxes = atoi(optarg); break;
		default: usage();
		}
	}
	if (cfg.url == NULL || cfg.workers <= 0 || cfg.workers > 4096 || cfg.seconds <= 0 ||
	    cfg.size == 0 || cfg.size > (64u << 20) || cfg.boxes <= 0 || cfg.boxes > 100)
		usage();
	self_pid = getpid();

	struct worker *ws = calloc((size_t)cfg.workers, sizeof *ws);
	if (ws == NULL)
		return 1;
	pthread_barrier_init(&ready, NULL, (unsigned)cfg.workers + 1);
	for (int i = 0; i < cfg.workers; i++) {
		ws[i].id = i;
		ws[i].cfg = &cfg;
		if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	pthread_barrier_wait(&ready);
	double start = now_seconds();
	int started = cfg.workers;
	struct timespec nap = {.tv_sec = (time_t)cfg.seconds,
	                       .tv_nsec = (long)((cfg.seconds - (double)(time_t)cfg.seconds) * 1e9)};
	while (nanosleep(&nap, &nap) == -1 && errno == EINTR)
		;
	atomic_store(&stop_flag, 1);
	uint64_t total = 0, errors = 0;
	int failed = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(ws[i].thread, NULL);
		total += ws[i].delivered;
		errors += ws[i].errors;
		failed |= ws[i].failed;
	}
	double elapsed = now_seconds() - start;
	printf("messages=%" PRIu64 " seconds=%.3f rate=%.1f errors=%" PRIu64 "\n", total, elapsed,
	       (double)total / elapsed, errors);
	free(ws);
	return failed || errors > 0 ? 1 : 0;
}
